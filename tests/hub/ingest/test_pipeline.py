"""The data path without I/O beyond its own SQLite files: topic -> decode -> normalise -> points."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from devices import REGISTRY, elevator
from devices.base import Accepted, Point
from hub.deadletter import DeadLetters
from hub.ingest.decode import Rejected
from hub.ingest.pipeline import Pipeline
from hub.registry import Device, Registry
from hub.state import DeviceState, LiveState
from hub.storage.base import points_from_json
from hub.storage.outbox import Outbox

pytestmark = pytest.mark.unit

NOW = 1_790_000_000_000
TOPIC = "c/s1/elevator/e1/telemetry"


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    registry = Registry(devices=[Device(site="s1", kind="elevator", device="e1", building="3")])
    return Pipeline("c", {"elevator": elevator.KIND}, registry, LiveState(), Outbox(tmp_path / "o.db"),
                    DeadLetters(tmp_path / "d.db"))


def outbox_points(p: Pipeline) -> list[Point]:
    p.flush()
    return [point for part in p.outbox.take(100_000) for body in part.bodies for point in points_from_json(body)]


def test_telemetry_becomes_a_point_with_registry_tags(pipeline: Pipeline) -> None:
    result = pipeline.handle(TOPIC, b'{"floor": 3, "running": true, "seq": 7, "ts": %d}' % (NOW - 40), NOW)
    assert isinstance(result, Accepted)
    [point] = outbox_points(pipeline)
    assert point == Point("elevator", {"site": "s1", "device": "e1", "building": "3"},
                          {"floor": 3, "running": True, "seq": 7, "lag_ms": 40}, NOW - 40)


def test_rejects_are_counted_kept_and_do_not_stop_the_next_message(pipeline: Pipeline) -> None:
    bad = pipeline.handle(TOPIC, b"{not json", NOW)
    assert isinstance(bad, Rejected) and bad.reason == "not_json" and bad.kind == "elevator"
    assert isinstance(pipeline.handle(TOPIC, b'{"floor": 1}', NOW), Accepted)
    assert pipeline.stats.rejected == {("elevator", "not_json"): 1}
    pipeline.flush()
    [row] = pipeline.dead_letters.recent()
    assert (row["topic"], row["reason"], row["payload"]) == (TOPIC, "not_json", "{not json")


def test_a_message_whose_point_no_store_can_keep_is_dead_lettered_whole(tmp_path: Path) -> None:
    """A registry tag with a backslash (typed by an operator): InfluxDB 1.x cannot store it exactly."""
    registry = Registry(devices=[Device(site="s1", kind="elevator", device="e1", building="b\\1")])
    p = Pipeline("c", {"elevator": elevator.KIND}, registry, LiveState(), Outbox(tmp_path / "o.db"),
                 DeadLetters(tmp_path / "d.db"))
    result = p.handle(TOPIC, b'{"floor": 3}', NOW)
    assert isinstance(result, Rejected) and result.reason == "unstorable" and "building" in result.detail
    assert p.stats.rejected == {("elevator", "unstorable"): 1} and not p.stats.accepted
    assert ("s1", "elevator", "e1") not in p.live.devices or p.live.devices[("s1", "elevator", "e1")].messages == 0
    assert outbox_points(p) == [] and [r["reason"] for r in p.dead_letters.recent()] == ["unstorable"]


def test_a_device_added_field_needs_a_plain_name(pipeline: Pipeline) -> None:
    for name in ("a\\,", "x y", "1st", "温度", "a" * 65, "site=victim"):
        result = pipeline.handle(TOPIC, orjson.dumps({"floor": 1, name: 2}), NOW)
        assert isinstance(result, Rejected) and result.reason == "invalid" and "field name" in result.detail, name
    assert isinstance(pipeline.handle(TOPIC, b'{"floor": 1, "vendor.temp_c": 2, "_x-1": true}', NOW), Accepted)


def test_retained_state_refreshes_live_state_but_is_not_stored_again(pipeline: Pipeline) -> None:
    pipeline.handle("c/s1/elevator/e1/state", b'{"online": false}', NOW, retain=True)
    state = pipeline.live.devices[("s1", "elevator", "e1")]
    assert state.online_flag is False
    assert outbox_points(pipeline) == []
    pipeline.handle("c/s1/elevator/e1/state", b'{"online": true}', NOW)
    assert [p.measurement for p in outbox_points(pipeline)] == ["device_state"]


def test_a_failing_listener_is_counted_and_others_still_run(pipeline: Pipeline) -> None:
    seen: list[str] = []

    def broken(msg: Accepted, state: DeviceState) -> None:
        raise RuntimeError("bug in a sink")

    pipeline.events.on_message("broken", broken)
    pipeline.events.on_message("seen", lambda msg, state: seen.append(msg.device))
    assert isinstance(pipeline.handle(TOPIC, b'{"floor": 1}', NOW), Accepted)
    assert isinstance(pipeline.handle(TOPIC, b'{"floor": 2}', NOW), Accepted)
    assert seen == ["e1", "e1"] and pipeline.stats.listener_errors == 2
    assert pipeline.events.errors == {("MessageAccepted", "broken"): 2}


def test_fault_events_open_and_close_in_live_state(pipeline: Pipeline) -> None:
    topic = "c/s1/elevator/e1/event"
    pipeline.handle(topic, orjson.dumps({"type": "fault", "code": "trapped_passenger", "active": True}), NOW)
    state = pipeline.live.devices[("s1", "elevator", "e1")]
    assert list(state.open_faults) == ["trapped_passenger"]
    pipeline.handle(topic, orjson.dumps({"type": "fault", "code": "trapped_passenger", "active": False}), NOW + 1)
    assert state.open_faults == {}
    tags = [p.tags for p in outbox_points(pipeline)]
    assert tags == [{"site": "s1", "device": "e1", "type": "fault", "code": "trapped_passenger"}] * 2


def test_unregistered_devices_are_added_and_flagged(pipeline: Pipeline) -> None:
    pipeline.handle("c/s1/elevator/new-1/telemetry", b'{"floor": 1}', NOW)
    device = pipeline.registry.get(("s1", "elevator", "new-1"))
    assert device is not None and device.registered is False


def every_kind(tmp_path: Path) -> Pipeline:
    return Pipeline("c", REGISTRY, Registry(), LiveState(), Outbox(tmp_path / "o.db"), DeadLetters(tmp_path / "d.db"))


def test_a_dup_redelivery_of_a_committed_message_is_dropped_also_by_the_next_process(tmp_path: Path) -> None:
    pipeline = every_kind(tmp_path)
    body = b'{"type": "barrier", "state": "open"}'  # no ts, no id: only the delivery key tells copies apart
    topic = "c/s1/gate/g1/event"
    assert isinstance(pipeline.handle(topic, body, NOW, packet_id=7), Accepted)
    assert isinstance(pipeline.handle(topic, body, NOW + 5, packet_id=8), Accepted)  # the same bytes, sent again
    pipeline.flush()
    assert pipeline.handle(topic, body, NOW + 9, packet_id=7, dup=True) is None
    assert isinstance(pipeline.handle(topic, body, NOW + 9, packet_id=9, dup=True), Accepted)  # DUP, never seen
    pipeline.flush()
    assert pipeline.stats.redelivered == 1
    following = Pipeline("c", REGISTRY, pipeline.registry, LiveState(), pipeline.outbox, pipeline.dead_letters)
    assert following.handle(topic, body, NOW + 20, packet_id=8, dup=True) is None
    assert isinstance(following.handle(topic, body, NOW + 20, packet_id=8), Accepted)  # not DUP: a new message
    assert len(outbox_points(following)) == 4


def test_an_event_id_is_stored_once_also_by_the_next_process(tmp_path: Path) -> None:
    pipeline = every_kind(tmp_path)
    body = orjson.dumps({"type": "access", "id": "ev-1", "method": "card", "subject": "s-9", "result": "granted"})
    assert isinstance(pipeline.handle("c/s1/access/d1/event", body, NOW), Accepted)
    pipeline.flush()
    following = Pipeline("c", REGISTRY, pipeline.registry, LiveState(), pipeline.outbox, pipeline.dead_letters)
    assert following.handle("c/s1/access/d1/event", body, NOW + 60_000) is None
    assert following.stats.duplicates["access"] == 1
    assert len(outbox_points(pipeline)) == 1


def test_telemetry_with_its_own_ts_or_seq_sent_again_is_stored_once(pipeline: Pipeline) -> None:
    """A publisher that lost the broker's PUBACK sends the same bytes again; the broker passes them on as a
    new message (no DUP, another packet id). Without ts and seq, identical bytes are two observations."""
    with_ts = b'{"floor": 3, "ts": %d, "seq": 41}' % (NOW - 50)
    with_seq = b'{"floor": 4, "seq": 42}'
    plain = b'{"floor": 5}'
    for body in (with_ts, with_seq, plain):
        assert isinstance(pipeline.handle(TOPIC, body, NOW, packet_id=1), Accepted)
    between = [pipeline.handle(TOPIC, b'{"floor": %d, "ts": %d}' % (i, NOW + i), NOW + 100 + i) for i in range(20)]
    assert all(isinstance(m, Accepted) for m in between)  # far more than the series clock remembers
    assert pipeline.handle(TOPIC, with_ts, NOW + 500, packet_id=2) is None
    assert pipeline.handle(TOPIC, with_seq, NOW + 500, packet_id=3) is None
    assert isinstance(pipeline.handle(TOPIC, plain, NOW + 500, packet_id=4), Accepted)
    assert isinstance(pipeline.handle("c/s1/elevator/e2/telemetry", with_ts, NOW + 500), Accepted)  # another device
    assert pipeline.stats.repeated == 2
    assert len(outbox_points(pipeline)) == 3 + 20 + 1 + 1


def test_nan_and_infinity_are_counted_and_dead_lettered_never_dropped_silently(pipeline: Pipeline) -> None:
    for body in (b'{"floor": NaN}', b'{"floor": 1, "load_kg": Infinity}', b'{"floor": 1, "speed_mps": -Infinity}'):
        result = pipeline.handle(TOPIC, body, NOW)
        assert isinstance(result, Rejected) and result.reason == "invalid", body
    assert pipeline.stats.rejected == {("elevator", "invalid"): 3}
    assert outbox_points(pipeline) == []
    assert sorted(row["payload"] for row in pipeline.dead_letters.recent()) == [
        '{"floor": 1, "load_kg": Infinity}', '{"floor": 1, "speed_mps": -Infinity}', '{"floor": NaN}']


def test_an_empty_state_clears_quietly_but_an_empty_message_elsewhere_is_dead_lettered(
        pipeline: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    """An empty retained publish is how MQTT deletes a retained message: a device clearing its `state`."""
    pipeline.handle("c/s1/elevator/e1/state", b'{"online": true}', NOW, retain=True)
    with caplog.at_level(logging.INFO):
        assert pipeline.handle("c/s1/elevator/e1/state", b"", NOW + 1, retain=True) is None
        assert pipeline.handle("c/s1/elevator/e1/state", b"", NOW + 2) is None  # as current subscribers get it
    assert caplog.records == []
    assert pipeline.stats.state_cleared == {"elevator": 2} and not pipeline.stats.rejected
    pipeline.flush()
    assert pipeline.dead_letters.recent() == []
    for channel in ("telemetry", "event", "reply"):
        bad = pipeline.handle(f"c/s1/elevator/e1/{channel}", b"", NOW)
        assert isinstance(bad, Rejected) and bad.reason == "not_json", channel
    pipeline.flush()
    assert len(pipeline.dead_letters.recent()) == 3
    assert pipeline.stats.rejected == {("elevator", "not_json"): 3}


def test_a_flood_of_rejections_logs_a_few_lines_but_counts_and_keeps_every_one(
        pipeline: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    pipeline.reject_log.clock = lambda: clock[0]
    with caplog.at_level(logging.WARNING, logger="hub.ingest.pipeline"):
        for i in range(1000):
            clock[0] = i * 0.03  # 1,000 messages over 30 s
            pipeline.handle(TOPIC, b"{not json %d" % i, NOW + i)
            pipeline.handle(TOPIC, b'{"floor": "x%d"}' % i, NOW + i)
        clock[0] = 45.0
        pipeline.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 * 4, lines  # per reason: the first, then one per 10 s window
    assert lines[0].startswith("rejected not_json from c/s1/elevator/e1/telemetry: ")
    assert "(333 more not_json messages in the last 10 s)" in lines[2]
    assert lines[-1] == "rejected 331 more invalid messages in the last 25 s"  # 1 + 333 + 1 + 333 + 1 + 331
    assert pipeline.stats.rejected == {("elevator", "not_json"): 1000, ("elevator", "invalid"): 1000}
    assert len(pipeline.dead_letters.recent(5000)) == 2000


def test_a_kind_s_check_refuses_before_points_are_made_and_never_judges_a_retained_message(tmp_path: Path) -> None:
    """The meter's register check: a reading below the register, with no `replaced` between, is a dead letter
    under the check's reason; a retained copy is neither refused nor remembered."""
    from devices import meter

    p = Pipeline("c", {"meter": meter.KIND}, Registry(), LiveState(), Outbox(tmp_path / "o.db"),
                 DeadLetters(tmp_path / "d.db"))
    topic = "c/s1/meter/m1/telemetry"

    def reading(value: float, at: int, retain: bool = False) -> Accepted | Rejected | None:
        return p.handle(topic, b'{"utility": "water", "reading": %g, "ts": %d}' % (value, at), at, retain=retain)

    assert isinstance(reading(10, NOW), Accepted) and isinstance(reading(12, NOW + 1000), Accepted)
    assert isinstance(reading(5, NOW + 1500, retain=True), Accepted)  # a retained copy: not judged, not kept
    refused = reading(11, NOW + 2000)
    assert isinstance(refused, Rejected) and refused.reason == meter.REGISTER_REGRESSED and refused.kind == "meter"
    assert "below the register's 12" in refused.detail
    assert p.stats.rejected == {("meter", "register_regressed"): 1}
    assert [pt.fields["reading"] for pt in outbox_points(p)] == [10, 12]
    assert [r["reason"] for r in p.dead_letters.recent()] == ["register_regressed"]
    replaced = b'{"type": "replaced", "id": "r1", "old_reading": 12, "new_reading": 0.5, "ts": %d}' % (NOW + 3000)
    assert isinstance(p.handle("c/s1/meter/m1/event", replaced, NOW + 3000), Accepted)
    assert isinstance(reading(1, NOW + 4000), Accepted)

