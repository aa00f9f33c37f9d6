"""Fuzzing the data path (hypothesis): whatever arrives on whatever topic, `Pipeline.handle` never raises,
every rejection is counted and kept, and every accepted message becomes points that InfluxDB reads back as
exactly those points, tagged with the site and device of the topic it came on (no device writes for another).

The topics and payloads are what an attacker (or a broken device) could publish: arbitrary text and bytes
(MQTT topics arrive decoded with `surrogateescape`, so undecodable bytes included), arbitrary JSON on every
kind's real topics, and each kind's valid examples with fields added, removed and replaced. Examples are
bounded so the file runs in a few seconds; each property uses a fresh pipeline on its own SQLite files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st

from devices import REGISTRY
from devices.base import MAX_PAYLOAD_BYTES, Accepted, Point, ReplyPayload, StatePayload
from hub import topics
from hub.deadletter import DeadLetters
from hub.ingest.decode import PAYLOAD_KEEP_BYTES, Rejected, reasons
from hub.ingest.pipeline import Pipeline
from hub.registry import Device, Registry
from hub.state import LiveState
from hub.storage import lineproto
from hub.storage.outbox import Outbox

pytestmark = pytest.mark.unit

ROOT = "c"
NOW = 1_790_000_000_000
INT64 = (-(2**63), 2**63 - 1)
FUZZ = settings(max_examples=200, deadline=None)

KINDS = sorted(REGISTRY)
CHANNELS = topics.INBOUND_CHANNELS
Stores = tuple[Outbox, DeadLetters]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    """Real SQLite outbox and dead letters, shared by a module's examples: making them costs ~50 ms."""
    tmp = tmp_path_factory.mktemp("fuzz")
    outbox, dead = Outbox(tmp / "o.db"), DeadLetters(tmp / "d.db")
    yield outbox, dead
    outbox.close()
    dead.close()


def fresh_pipeline(stores: Stores) -> Pipeline:
    """A pipeline with fresh in-memory state (caches, live state, counters) over the shared stores, per example,
    so a failure replays and shrinks alike."""
    registry = Registry(devices=[Device(site="s1", kind="elevator", device="e1", building="3")])
    return Pipeline(ROOT, REGISTRY, registry, LiveState(), *stores)


# --- line protocol, read back the way InfluxDB reads it --------------------------------------------------


def _name(text: str, i: int, stops: str) -> tuple[str, int]:
    """A name up to an unescaped stop character (names never hold a backslash of their own: `Unstorable`)."""
    out = []
    while i < len(text) and text[i] not in stops:
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out), i


def read_lines(body: str) -> list[tuple[str, dict[str, str], dict[str, Any], int]]:
    """Parse a write body line by line; a newline inside a quoted string value does not end a line."""
    lines = []
    i = 0
    while i < len(body):
        measurement, i = _name(body, i, ", \n")
        tags = {}
        while body[i] == ",":
            key, i = _name(body, i + 1, "=, \n")
            assert body[i] == "=", body
            tags[key], i = _name(body, i + 1, ", \n")
        assert body[i] == " ", body
        fields: dict[str, Any] = {}
        i += 1
        while True:
            key, i = _name(body, i, "=, \n")
            assert body[i] == "=", body
            i += 1
            if body[i] == '"':
                value = []
                i += 1
                while body[i] != '"':
                    if body[i] == "\\" and body[i + 1] in '"\\':
                        i += 1
                    value.append(body[i])
                    i += 1
                fields[key] = "".join(value)
                i += 1
            else:
                start = i
                while i < len(body) and body[i] not in ", \n":
                    i += 1
                fields[key] = body[start:i]
            if body[i] != ",":
                break
            i += 1
        assert body[i] == " ", body
        end = body.find("\n", i + 1)
        end = len(body) if end < 0 else end
        stamp = body[i + 1:end]
        assert stamp.isdigit(), body
        lines.append((measurement, tags, fields, int(stamp)))
        i = end + 1
    return lines


def wire(value: object) -> str | None:
    """How line protocol writes a field value; None when it is skipped."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def assert_storable(points: list[Point], parts: topics.TopicParts) -> None:
    """Each point passes `check`, encodes to one line InfluxDB reads back as itself, for the topic's device."""
    for point in points:
        lineproto.check(point)
        assert point.tags["site"] == parts.site and point.tags["device"] == parts.device, point
        assert point.tags.get("kind", parts.kind) == parts.kind, point
        assert point.measurement in (parts.kind, f"{parts.kind}_event", "device_state"), point
        for value in point.fields.values():
            if isinstance(value, int) and not isinstance(value, bool):
                assert INT64[0] <= value <= INT64[1], point  # InfluxDB and the outbox hold 64-bit integers
    body = lineproto.encode(points).decode()
    lines = read_lines(body)
    assert len(lines) == len(points), body
    for point, (measurement, tags, fields, stamp) in zip(points, lines, strict=True):
        assert measurement == point.measurement
        assert tags == {k: v for k, v in point.tags.items() if v}
        assert tags["site"] == parts.site and tags["device"] == parts.device, body
        expected = {k: w for k, v in point.fields.items() if (w := wire(v)) is not None}
        assert fields == expected and fields, body
        assert stamp == point.time_ms


# --- the properties' shared check ------------------------------------------------------------------------


def handle_and_check(p: Pipeline, topic: str, raw: bytes, retain: bool = False, packet_id: int = 0,
                     dup: bool = False) -> Accepted | Rejected | None:
    """One message through the pipeline, then every invariant of its outcome (flush included)."""
    received, rejected, pending = p.stats.received, p.stats.rejected.total(), p.pending
    result = p.handle(topic, raw, NOW, retain, packet_id, dup)
    assert p.stats.received == received + 1
    assert result is None or isinstance(result, Accepted | Rejected), result
    if currently_in_test_context():
        event(f"{type(result).__name__} {getattr(result, 'reason', '')}".strip())
    if isinstance(result, Rejected):
        assert result.reason in reasons(p.kinds), result
        assert p.stats.rejected.total() == rejected + 1 and p.stats.rejected[(result.kind, result.reason)] >= 1
        assert result.payload == raw[:PAYLOAD_KEEP_BYTES]
        assert p.pending == pending
    else:
        assert p.stats.rejected.total() == rejected
    if isinstance(result, Accepted):
        parts = topics.parse(topic, ROOT, REGISTRY)
        assert (result.site, result.kind, result.device, result.channel) == parts[1:]
        assert p.pending == pending + (0 if retain else 1)
        if not retain:
            assert_storable(REGISTRY[result.kind].to_points(result), parts)
    p.flush()  # must not raise: a flush that fails keeps failing and the edge acknowledges nothing again
    if isinstance(result, Rejected):
        [row] = p.dead_letters.recent(1)
        assert (row["reason"], row["kind"], row["detail"]) == (result.reason, result.kind, result.detail)
        assert row["topic"] == result.topic
    return result


# --- strategies -----------------------------------------------------------------------------------------

site_slugs = st.from_regex(topics.SITE_RE, fullmatch=True)
device_slugs = st.from_regex(topics.DEVICE_RE, fullmatch=True)
odd_levels = st.sampled_from(
    ["", "+", "#", "$SYS", "s1", "e1", "S1", "a" * 64, "a" * 65, "\x00", "e1\x00", "e1\n", " e1", "..", "小区",
     "telemetry", "cmd", *KINDS, *CHANNELS, "\udc80", "a\udcff"]
)
levels = st.one_of(odd_levels, site_slugs, st.text(max_size=70))
arbitrary_topics = st.one_of(
    st.text(),
    st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")),  # what the MQTT edge makes of any bytes
    st.lists(levels, max_size=8).map("/".join),
    st.lists(levels, max_size=6).map(lambda ls: "/".join([ROOT, *ls])),
    st.tuples(levels, st.sampled_from(KINDS) | levels, levels, st.sampled_from(CHANNELS) | levels).map(
        lambda t: "/".join([ROOT, *t])),
    st.integers(1, 70_000).map(lambda n: f"{ROOT}/s1/elevator/{'e' * n}/telemetry"),
)
valid_topics = st.builds(lambda s, k, d, c: f"{ROOT}/{s}/{k}/{d}/{c}", site_slugs, st.sampled_from(KINDS),
                         device_slugs, st.sampled_from(CHANNELS))

huge_ints = st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**30, 10**400, -(10**400)])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), huge_ints,
    st.floats(),  # NaN and infinities included: json.dumps writes them as NaN / Infinity
    st.text(max_size=40),
    st.sampled_from(["", "2026-11-22T23:00:00+08:00", "http://nvr/x.jpg", "javascript:alert(1)", "a\nb", '"\\']),
)
numbers = st.one_of(st.integers(), huge_ints, st.floats())
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
model_names = sorted({name for kind in REGISTRY.values()
                      for model in (kind.telemetry, *kind.events, kind.fault)  # type: ignore[attr-defined]
                      for name in model.model_fields})
field_names = st.one_of(
    st.sampled_from(model_names),
    st.sampled_from(["site", "device", "kind", "time", "building", "label", "code", "lag_ms", "seq_value",
                     "online", "ok", "fw", "x y", "a,b", "a=b", "a\\", "a\n", "", "#", "é", "a" * 64, "a" * 65]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,8}", fullmatch=True),
    st.text(max_size=12),
)
objects = st.dictionaries(field_names, json_values, max_size=8)
event_objects = st.builds(lambda t, rest: {"type": t, **rest},
                          st.sampled_from(sorted({t for k in REGISTRY.values() for t in k.event_types})), objects)


def model_names_of(kind: str, channel: str) -> list[str]:
    kind_ = REGISTRY[kind]
    models = {"telemetry": (kind_.telemetry,), "event": (*kind_.events, kind_.fault),  # type: ignore[attr-defined]
              "state": (StatePayload,), "reply": (ReplyPayload,)}[channel]
    return sorted({name for model in models for name in model.model_fields})


@st.composite
def kind_shaped(draw: st.DrawFn) -> tuple[str, object]:
    """A topic of a kind and channel, and an object of that channel's field names (and others) with any values:
    arbitrary JSON is mostly rejected early, this reaches the models and the storage points."""
    kind, channel = draw(st.sampled_from(KINDS)), draw(st.sampled_from(CHANNELS))
    names = st.sampled_from(model_names_of(kind, channel))
    obj = draw(st.dictionaries(names | field_names, numbers | scalars | json_values, min_size=1, max_size=5))
    if channel == "event" and draw(st.booleans()):
        obj["type"] = draw(st.sampled_from(REGISTRY[kind].event_types))
    return f"{ROOT}/{draw(site_slugs)}/{kind}/{draw(device_slugs)}/{channel}", obj


def dumps(value: object) -> bytes:
    """JSON as a device may send it: huge integers exact, NaN/Infinity as Python writes them."""
    return json.dumps(value).encode()


payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(dumps),
    objects.map(dumps),
    st.sampled_from([b"", b"{}", b"[]", b"null", b"{", b"\xff\xfe", b'{"a":1,"a":2}', b"{\"floor\": 1}\x00",
                     b'{"floor": 1' + b"0" * 400 + b"}", b" " * (MAX_PAYLOAD_BYTES + 1),
                     b'{"online": true}', b'{"id": "c1", "ok": true}']),
)


# --- 1. anything on any topic ---------------------------------------------------------------------------


@FUZZ
@given(topic=arbitrary_topics, raw=payloads, retain=st.booleans(), packet_id=st.integers(0, 65535),
       dup=st.booleans())
@example(topic="c/s\udc80/elevator/e1/telemetry", raw=b"{}", retain=False, packet_id=0, dup=False)  # failed flush
def test_anything_on_any_topic_never_raises_and_every_rejection_is_kept(stores: Stores, topic: str, raw: bytes,
                                                                         retain: bool, packet_id: int,
                                                                         dup: bool) -> None:
    p = fresh_pipeline(stores)
    handle_and_check(p, topic, raw, retain, packet_id, dup)
    # the same delivery again (a DUP redelivery, or a repeat): still no exception, still counted
    handle_and_check(p, topic, raw, retain, packet_id, True)


# --- 2. arbitrary JSON on every kind's real topics ------------------------------------------------------


@FUZZ
@given(case=st.tuples(valid_topics, st.one_of(json_values, objects, event_objects)) | kind_shaped())
@example(case=("c/s1/elevator/e1/telemetry", {"floor": 10**30}))  # once stopped every later outbox commit
@example(case=("c/s1/elevator/e1/telemetry", {"floor": 1, "seq": 2**63}))
@example(case=("c/s1/elevator/e1/telemetry", {"floor": 1, "x": 10**400}))  # OverflowError out of handle
@example(case=("c/s1/elevator/e1/telemetry", {"floor": 1, "x": [10**30]}))  # orjson's TypeError out of handle
def test_arbitrary_json_on_real_topics_is_accepted_storably_or_rejected(stores: Stores,
                                                                         case: tuple[str, object]) -> None:
    topic, value = case
    p = fresh_pipeline(stores)
    handle_and_check(p, topic, dumps(value))


# --- 3. each kind's valid examples, mutated -------------------------------------------------------------

valid_examples = [(kind.name, channel, ex) for kind in REGISTRY.values()
                  for channel, exs in kind.examples.items() for ex in exs]
mutations = st.lists(st.one_of(
    st.tuples(st.just("set"), field_names, numbers | json_values),
    st.tuples(st.just("drop"), st.integers(0, 20), st.none()),
    st.tuples(st.just("replace"), st.integers(0, 20), numbers | json_values),
), min_size=1, max_size=5)


def mutate(payload: dict[str, Any], ops: list[tuple[str, Any, Any]]) -> dict[str, Any]:
    out = dict(payload)
    for op, where, value in ops:
        if op == "set":
            out[where] = value
        elif out:
            name = sorted(out)[where % len(out)]
            if op == "drop":
                del out[name]
            else:
                out[name] = value
    return out


def test_every_example_is_accepted_as_is(stores: Stores) -> None:
    """The mutation property starts from valid payloads: check that they are. Each is valid alone, so each is
    its own device's: a kind's checks (`DeviceKind.checks`) judge a device's messages against its earlier ones,
    and a water example's register after an electricity one's would run backwards."""
    p = fresh_pipeline(stores)
    for i, (kind, channel, ex) in enumerate(valid_examples):
        result = handle_and_check(p, f"{ROOT}/s1/{kind}/d{i}/{channel}", dumps(ex))
        assert isinstance(result, Accepted | None), (kind, channel, ex, result)


@FUZZ
@given(case=st.sampled_from(valid_examples), ops=mutations, site=site_slugs, device=device_slugs,
       retain=st.booleans())
def test_mutated_examples_never_raise_and_stay_storable(stores: Stores, case: tuple[str, str, dict[str, Any]],
                                                        ops: list[tuple[str, Any, Any]], site: str, device: str,
                                                        retain: bool) -> None:
    kind, channel, ex = case
    p = fresh_pipeline(stores)
    handle_and_check(p, f"{ROOT}/{site}/{kind}/{device}/{channel}", dumps(mutate(ex, ops)), retain)


# --- 4. topic parsing -----------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(topic=arbitrary_topics | valid_topics, root=st.sampled_from([ROOT, "acme/community"]))
def test_parse_returns_contract_slugs_or_raises_topic_error(topic: str, root: str) -> None:
    topic = topic.replace(f"{ROOT}/", f"{root}/", 1) if topic.startswith(f"{ROOT}/") else topic
    try:
        parts = topics.parse(topic, root, REGISTRY)
    except topics.TopicError:  # UnknownKind is one
        return
    assert topics.SITE_RE.fullmatch(parts.site) and parts.site.isascii() and len(parts.site) <= 64
    assert topics.DEVICE_RE.fullmatch(parts.device) and parts.device.isascii() and len(parts.device) <= 64
    assert parts.kind in REGISTRY and parts.channel in topics.CHANNELS and parts.root == root
    assert parts.format() == topic


def test_what_fuzzing_found_is_now_rejected_or_kept(stores: Stores) -> None:
    """The bugs these properties found, each with the outcome it has now (and the next message still goes in)."""
    p = fresh_pipeline(stores)
    topic = f"{ROOT}/s1/elevator/e1/telemetry"
    huge = handle_and_check(p, topic, b'{"floor": 1' + b"0" * 30 + b"}")
    assert isinstance(huge, Rejected) and huge.reason == "unstorable" and "'floor'" in huge.detail
    huge_seq = handle_and_check(p, topic, b'{"floor": 1, "seq": %d}' % 2**63)
    assert isinstance(huge_seq, Rejected) and huge_seq.reason == "unstorable" and "'seq'" in huge_seq.detail
    beyond_float = handle_and_check(p, topic, b'{"floor": 1, "x": 1' + b"0" * 400 + b"}")
    assert isinstance(beyond_float, Rejected) and beyond_float.reason == "invalid" and "x is NaN or infinite" in \
        beyond_float.detail
    nested = handle_and_check(p, topic, b'{"floor": 2, "x": [1' + b"0" * 30 + b"]}")
    assert isinstance(nested, Accepted) and nested.fields()["x"] == "[1" + "0" * 30 + "]"
    odd_topic = handle_and_check(p, "c/s\udc80/elevator/e1/telemetry", b"{}")
    assert isinstance(odd_topic, Rejected) and odd_topic.topic == "c/s\\udc80/elevator/e1/telemetry"
    assert isinstance(handle_and_check(p, topic, b'{"floor": 3}'), Accepted)
