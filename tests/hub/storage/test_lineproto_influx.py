"""InfluxDB itself as the oracle of our line protocol: what a device makes of a name or a value cannot leave its line.

Arbitrary points (names and values with commas, equals signs, spaces, quotes, backslashes, newlines,
control characters, any Unicode) go through the hub's encoder to a real InfluxDB and are read back.
Each point is either refused by the encoder (`Unstorable`, so it goes to the dead letters) or comes
back identical, and nothing else appears: no other measurement, series, field or point.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from devices.base import Point
from hub.storage import lineproto
from hub.storage.influx import quote_ident

pytestmark = [pytest.mark.integration, pytest.mark.services]

tricky = [",", "=", " ", '"', "'", "#", "小", "区", "琼", '="', ' "', ",=", "a", "b", "0"]
unstorable = ["\\", "\n", "\r", "\t", "\x00", "\\,", "\\=", "\\ ", '\\"', "\\\n"]
# Mostly the characters line protocol treats specially, so most examples hold several; any other character
# (but surrogates, which UTF-8 cannot carry) now and then. Values may hold anything; a name only now and then
# holds what no line can carry exactly, so that most points reach InfluxDB and some are refused.
texts = st.lists(st.one_of(*[st.sampled_from(tricky + unstorable)] * 3, st.characters(exclude_categories=("Cs",))),
                 max_size=10).map("".join)
clean_names = st.lists(st.one_of(*[st.sampled_from(tricky)] * 3,
                                 st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\\")),
                       min_size=1, max_size=10).map("".join)
names = st.one_of(*[clean_names] * 12, texts).filter(lambda n: n != "time")  # InfluxDB keeps `time` for itself
values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
counter = itertools.count()


@st.composite
def points(draw: st.DrawFn) -> list[Point]:
    """1-3 points, each in a measurement of its own (so no field type of one can clash with another's)."""
    out = []
    for i, measurement in enumerate(draw(st.lists(names, min_size=1, max_size=3, unique=True))):
        tags = draw(st.dictionaries(names, names | st.just(""), max_size=3))  # an empty value: no tag
        fields = draw(st.dictionaries(names.filter(lambda n, t=tags: n not in t), values, min_size=1, max_size=4))
        out.append(Point(measurement, tags, fields, 1_700_000_000_000 + i))
    return out


@pytest.fixture(scope="module")
def http(influxd: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=influxd, timeout=10) as client:
        yield client


def query(http: httpx.Client, db: str, q: str) -> list[dict[str, Any]]:
    answer = http.get("/query", params={"db": db, "q": q, "epoch": "ms"}).json()
    assert "error" not in answer["results"][0], answer
    return answer["results"][0].get("series") or []


def stored(http: httpx.Client, db: str) -> list[tuple[str, int, dict[str, Any]]]:
    """Every point in the database: (measurement, time, tags and fields), non-null columns only."""
    out = []
    for series in query(http, db, "SHOW MEASUREMENTS"):
        for (measurement,) in series["values"]:
            for s in query(http, db, f"SELECT * FROM {quote_ident(measurement)}"):
                for row in s["values"]:
                    columns = dict(zip(s["columns"], row, strict=True))
                    time_ms = columns.pop("time")
                    out.append((measurement, time_ms, {k: v for k, v in columns.items() if v is not None}))
    return sorted(out, key=lambda p: p[1])


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return not isinstance(a, bool | str) and not isinstance(b, bool | str) and math.isclose(a, b, rel_tol=0)
    return type(a) is type(b) and a == b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=points())
@example(batch=[Point("m,1 x=", {"k=1 ,": "a=b ,", "t": '"q"'}, {"f=1 ,": 'x"\\\n', "g": 1.5, "h": -(2**63)}, 0)])
@example(batch=[Point("m", {}, {"s": "x\nm,site=victim f=1i 1"}, 0)])
def test_every_point_is_refused_or_read_back_identical_and_nothing_else_appears(
    http: httpx.Client, batch: list[Point]
) -> None:
    db = f"lp_{next(counter)}"
    http.post("/query", params={"q": f"CREATE DATABASE {db}"})
    try:
        kept = []
        for p in batch:
            try:
                lineproto.check(p)
            except lineproto.Unstorable:
                with pytest.raises(lineproto.Unstorable):
                    lineproto.encode([p])  # never a line for it, whatever the caller forgot
                continue
            kept.append(p)
        body = lineproto.encode(kept)
        if body:
            answer = http.post("/write", params={"db": db, "precision": "ms"}, content=body)
            assert answer.status_code == 204, (answer.text, body)
        expected = [(p.measurement, p.time_ms, {**{k: v for k, v in p.tags.items() if v}, **p.fields}) for p in kept]
        got = stored(http, db)
        assert [(m, t) for m, t, _ in got] == [(m, t) for m, t, _ in expected], body
        for (_, _, have), (_, _, want) in zip(got, expected, strict=True):
            assert have.keys() == want.keys() and all(same(have[k], want[k]) for k in want), (have, want, body)
    finally:
        http.post("/query", params={"q": f"DROP DATABASE {db}"})


def test_the_forgery_of_issue_11_is_refused_and_a_newline_in_a_value_stays_in_it(http: httpx.Client) -> None:
    """The field name `a\\,` with a newline in its value once wrote `elevator,device=forged,site=victim`."""
    forged = "x\nelevator,device=forged,site=victim floor=99"
    with pytest.raises(lineproto.Unstorable):
        lineproto.encode([Point("gate_event", {"site": "s", "device": "g1"}, {"a\\,": forged}, 1_700_000_000_000)])
    db = f"lp_{next(counter)}"
    http.post("/query", params={"q": f"CREATE DATABASE {db}"})
    try:
        point = Point("gate_event", {"site": "s", "device": "g1"}, {"note": forged, "n": 1}, 1_700_000_000_000)
        assert http.post("/write", params={"db": db, "precision": "ms"},
                         content=lineproto.encode([point])).status_code == 204
        assert stored(http, db) == [("gate_event", 1_700_000_000_000, {"site": "s", "device": "g1", "note": forged,
                                                                       "n": 1})]
    finally:
        http.post("/query", params={"q": f"DROP DATABASE {db}"})
