"""Our line-protocol encoder agrees with influxdb-client's `Point` byte for byte where both are right.

InfluxDB itself is the oracle for safety (`tests/hub/storage/test_lineproto_influx.py`); here the
client checks the formatting, on what both encoders write the same: non-empty names without a
backslash or a control character (which we refuse: `Unstorable`, pinned below), finite floats,
64-bit integers, measurements not starting with `#`.

Formats already aligned (checked by the property): floats via `repr`, which is
Python's `str` for floats, with a whole number's `.0` dropped (`2.0` -> `2`);
ints as `3i`; bools as `true`/`false`; NaN, infinities and None skipped.
"""

from __future__ import annotations

import enum
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client.client.write.point import Point as OraclePoint
from influxdb_client.domain.write_precision import WritePrecision

from devices.base import Point
from hub.storage.base import points_from_json, points_json, split_points_json
from hub.storage.lineproto import Unstorable, check, encode, line, series_key, split

pytestmark = pytest.mark.unit

specials = st.sampled_from([",", "=", " ", '"', "'", "#", "小", "区", "琼"])
name_chars = st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\\") | specials
names = st.text(name_chars, min_size=1, max_size=12)
measurements = names.filter(lambda n: not n.startswith("#"))
tag_values = st.text(name_chars, max_size=12)  # empty values are allowed: both encoders drop the tag
field_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),  # any text, newlines and quotes included
)
times = st.integers(min_value=0, max_value=4_102_444_800_000)
points = st.builds(
    Point,
    measurement=measurements,
    tags=st.dictionaries(names, tag_values, max_size=4),
    fields=st.dictionaries(names, field_values | st.sampled_from([None, math.nan, math.inf]), max_size=5),
    time_ms=times,
)


def oracle(p: Point) -> str:
    point = OraclePoint(p.measurement).time(p.time_ms, WritePrecision.MS)
    for key, tag in p.tags.items():
        point = point.tag(key, tag)
    for key, value in p.fields.items():
        point = point.field(key, value)
    return str(point.to_line_protocol())


@settings(max_examples=500, deadline=None)
@given(
    measurement=measurements,
    tags=st.dictionaries(names, tag_values, max_size=4),
    fields=st.dictionaries(names, field_values, min_size=1, max_size=5),
    time_ms=times,
)
def test_each_line_matches_influxdb_client(
    measurement: str, tags: dict[str, str], fields: dict[str, bool | int | float | str], time_ms: int
) -> None:
    p = Point(measurement, tags, fields, time_ms)
    assert line(p) == oracle(p)


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(points, max_size=6))
def test_a_batch_matches_influxdb_client_and_skips_points_without_fields(batch: list[Point]) -> None:
    """None, NaN and infinities are dropped per field; a point left without fields is dropped whole."""
    expected = "\n".join(text for p in batch if (text := oracle(p)))
    assert encode(batch) == expected.encode()


def test_literal_examples() -> None:
    points = [
        Point("gate_event", {"site": "阳光 小区", "device": "g,1", "type": "passage"},
              {"plate": '琼A"12345\\', "confidence": 0.97, "seq": 3, "ok": True, "lag_ms": 0}, 1_790_000_000_123),
        Point("elevator", {"site": "s1", "device": "e1", "building": ""}, {"speed_mps": 2.0, "x": None}, 5),  # type: ignore[dict-item]
        Point("m,1 x", {"k=1": "a=b"}, {"f,1 =": "multi\nline", "no": False, "big": 1e16}, 6),
    ]
    assert encode(points) == (
        'gate_event,device=g\\,1,site=阳光\\ 小区,type=passage confidence=0.97,lag_ms=0i,ok=true,'
        'plate="琼A\\"12345\\\\",seq=3i 1790000000123\n'
        "elevator,device=e1,site=s1 speed_mps=2 5\n"
        'm\\,1\\ x,k\\=1=a\\=b big=1e+16,f\\,1\\ \\==\"multi\nline\",no=false 6'
    ).encode()


@pytest.mark.parametrize("point", [
    Point("m", {"k": "v\\"}, {"f": 1}, 7),  # InfluxDB 1.x reads `\\=` or `\\,` as an escape: no exact line exists
    Point("m", {}, {"a\\,": "x\nelevator,device=forged,site=victim floor=99"}, 7),  # the forgery that was
    Point("m\\", {}, {"f": 1}, 7),
    Point("m", {"k\n": "v"}, {"f": 1}, 7),
    Point("m", {"k": "v\r"}, {"f": 1}, 7),
    Point("m", {}, {"f\x00": 1}, 7),
    Point("m", {"": "v"}, {"f": 1}, 7),
    Point("m", {}, {"": 1}, 7),
    Point("", {}, {"f": 1}, 7),
    Point("#m", {}, {"f": 1}, 7),  # a comment line
])
def test_a_name_no_line_can_carry_exactly_is_refused_never_rewritten(point: Point) -> None:
    with pytest.raises(Unstorable):
        check(point)
    with pytest.raises(Unstorable):
        line(point)


def test_string_values_keep_every_character_newlines_included() -> None:
    p = Point("m", {"k": "v"}, {"s": 'a\\b"c\nd\re\x00'}, 7)
    check(p)
    assert line(p) == 'm,k=v s="a\\\\b\\"c\nd\re\x00" 7'


def test_subclasses_of_the_field_types_are_written_as_their_base_type() -> None:
    class Door(enum.StrEnum):
        OPEN = "open"

    class Floor(enum.IntEnum):
        LOBBY = 1

    assert line(Point("m", {}, {"door": Door.OPEN, "floor": Floor.LOBBY}, 1)) == 'm door="open",floor=1i 1'


def test_points_without_storable_fields_are_skipped() -> None:
    assert encode([Point("m", {}, {"x": math.nan}, 1), Point("m", {}, {"x": 1}, 2), Point("m", {}, {}, 3)]) == (
        b"m x=1i 2"
    )


def test_series_key_drops_empty_tags_and_sorts() -> None:
    assert series_key("elevator", {"site": "s", "building": "", "device": "e 1"}) == "elevator,device=e\\ 1,site=s"


@settings(max_examples=1000, deadline=None)
@given(batch=st.lists(points.map(lambda p: p._replace(time_ms=p.time_ms - 2_000_000_000_000)), max_size=8))
def test_split_cuts_a_body_into_the_lines_of_its_points(batch: list[Point]) -> None:
    """Newlines inside string values, quotes inside names, `="` inside names: a line ends only where a point does."""
    assert split(encode(batch)) == [encode([p]) for p in batch if line(p) is not None]


def test_split_is_not_fooled_by_a_line_inside_a_string_or_a_quote_inside_a_name() -> None:
    batch = [
        Point('m"', {'t"a': 'a"b', "k": '"="'}, {'f"': 'x\nm,site=other v=1 5\n', "g": 1.5}, 1),
        Point("m", {"site": "s"}, {"s": '" 9\nm v=2 3', "n": 2}, 2),
        Point("m", {}, {"s": "\\"}, 3),
    ]
    assert split(encode(batch)) == [encode([p]) for p in batch]
    assert len(split(encode(batch))) == 3


@pytest.mark.parametrize("body", [b"m v=1", b"m v=1 2\n\n", b'm s="open 2', b"m v=1 2 3", b"no fields 1"])
def test_split_refuses_bytes_our_encoder_cannot_have_made(body: bytes) -> None:
    with pytest.raises(ValueError):
        split(body)


@given(batch=st.lists(points, max_size=6))
def test_points_json_splits_into_one_body_per_point(batch: list[Point]) -> None:
    parts = split_points_json(points_json(batch))
    assert [p for part in parts for p in points_from_json(part)] == points_from_json(points_json(batch))
    assert all(len(points_from_json(part)) == 1 for part in parts)
