"""The data path without I/O beyond its own SQLite files: topic -> decode -> normalise -> points."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from devices import elevator
from devices.base import Accepted, Point
from hub.deadletter import DeadLetters
from hub.ingest.decode import Rejected
from hub.ingest.pipeline import FLUSH_POINTS, Pipeline
from hub.registry import Device, Registry
from hub.state import DeviceState, LiveState
from hub.storage.outbox import Outbox

NOW = 1_790_000_000_000
TOPIC = "c/s1/elevator/e1/telemetry"


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    registry = Registry(devices=[Device(site="s1", kind="elevator", device="e1", building="3")])
    return Pipeline("c", {"elevator": elevator.KIND}, registry, LiveState(), Outbox(tmp_path / "o.db"),
                    DeadLetters(tmp_path / "d.db"))


def outbox_points(p: Pipeline) -> list[Point]:
    p.flush()
    return p.outbox.take(100_000)[1]


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

    pipeline.listeners += [broken, lambda msg, state: seen.append(msg.device)]
    assert isinstance(pipeline.handle(TOPIC, b'{"floor": 1}', NOW), Accepted)
    assert seen == ["e1"] and pipeline.stats.listener_errors == 1


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


def test_pending_points_flush_to_the_outbox_by_themselves_when_many(pipeline: Pipeline) -> None:
    for i in range(FLUSH_POINTS):
        pipeline.handle(TOPIC, b'{"floor": %d}' % (i % 20), NOW + i)
    assert pipeline.pending == 0 and pipeline.outbox.depth == FLUSH_POINTS
