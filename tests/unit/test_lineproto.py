"""Our line-protocol encoder agrees with influxdb-client's `Point`, the oracle, byte for byte."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client import Point as OraclePoint
from influxdb_client import WritePrecision

from devices.base import Point
from hub.storage.lineproto import encode, line

names = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(",= \\\"'"), min_size=1, max_size=12)
field_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
times = st.integers(min_value=0, max_value=4_102_444_800_000)


measurements = names.filter(lambda n: not n.startswith("#"))  # '#' starts a comment line


def oracle(p: Point) -> str:
    point = OraclePoint(p.measurement).time(p.time_ms, WritePrecision.MS)
    for k, v in p.tags.items():
        point = point.tag(k, v)
    for k, v in p.fields.items():
        point = point.field(k, v)
    return str(point.to_line_protocol())


@settings(max_examples=400, deadline=None)
@given(
    measurement=measurements,
    tags=st.dictionaries(names, names, max_size=4),
    fields=st.dictionaries(names, field_values, min_size=1, max_size=5),
    time_ms=times,
)
def test_matches_influxdb_client(measurement: str, tags: dict, fields: dict, time_ms: int) -> None:  # type: ignore[type-arg]
    p = Point(measurement, tags, fields, time_ms)
    assert line(p) == oracle(p)


def test_literal_examples() -> None:
    points = [
        Point("gate_event", {"site": "阳光 小区", "device": "g,1", "type": "passage"},
              {"plate": '琼A"12345\\', "confidence": 0.97, "seq": 3, "ok": True, "lag_ms": 0}, 1_790_000_000_123),
        Point("elevator", {"site": "s1", "device": "e1", "building": ""}, {"speed_mps": 2.0}, 5),
    ]
    assert encode(points) == (
        'gate_event,device=g\\,1,site=阳光\\ 小区,type=passage confidence=0.97,lag_ms=0i,ok=true,'
        'plate="琼A\\"12345\\\\",seq=3i 1790000000123\n'
        "elevator,device=e1,site=s1 speed_mps=2 5"
    ).encode()


def test_points_without_storable_fields_are_skipped() -> None:
    assert encode([Point("m", {}, {"x": math.nan}, 1), Point("m", {}, {"x": 1}, 2)]) == b"m x=1i 2"
