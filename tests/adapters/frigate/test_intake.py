"""adapters/frigate/intake.py against a real Mosquitto and a running hub: Frigate's topics, published as Frigate
does (fixtures after docs.frigate.video/integrations/mqtt), arrive as the mapped camera's detections and state,
and what cannot be mapped is dead-lettered with Frigate's payload."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.adapters import mqtt_filters
from hub.config import Settings, parse_mqtt_url
from hub.credentials import broker_files
from simulators import frigate
from tests.support.hub_fixtures import HubRun, eventually, running_hub
from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER, Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]

FIXTURES = Path(__file__).parent / "fixtures"
API = "http://frigate.test:5000"
REGISTRY = """
[sites.sunshine]
name = "阳光花园"

[[devices]]
site = "sunshine"
kind = "camera"
device = "cam-lane-n"
aliases = {frigate = "lane_north"}

[devices.zones.fire_lane]
label = "fire_lane_blocked"
objects = ["person"]
dwell_s = 30

[[devices]]
site = "sunshine"
kind = "camera"
device = "cam-b3-facade"
aliases = {frigate = "b3_facade"}
zones = {facade = {label = "high_altitude_throw"}}
"""


@pytest.fixture
async def frigate_hub(settings_for: Callable[..., Settings], mosquitto: Broker, root: str, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[HubRun, str]]:
    prefix = f"frigate-{root}"  # one broker for the session: each test its own Frigate
    monkeypatch.setenv("SMARTHUB_FRIGATE_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("SMARTHUB_FRIGATE_URL", API)
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY, encoding="utf-8")
    settings = settings_for("embedded", registry=registry, adapters="adapters.ocpp,adapters.frigate")
    async with running_hub(settings, mosquitto) as run:
        yield run, prefix


FIXTURE_T0 = 1764614400.0
"""The fixtures' times start here; `fixture` moves them to now, so the store keeps them (retention)."""
NOW_S = time.time() - 120


def fixture(name: str) -> bytes:
    """A fixture as Frigate would send it now: its times (epoch seconds) moved by the same amount."""
    data = json.loads((FIXTURES / name).read_bytes())
    for side in (data.get("before"), data.get("after")):
        for obj in (side, (side or {}).get("snapshot")):
            for key in ("start_time", "end_time", "frame_time"):
                if isinstance(obj, dict) and isinstance(obj.get(key), float):
                    obj[key] += NOW_S - FIXTURE_T0
    return orjson.dumps(data)


async def devices(run: HubRun) -> dict[str, dict[str, Any]]:
    response = await run.api.get("/api/devices", params={"kind": "camera"})
    assert response.status_code == 200, response.text
    return {d["device"]: d for d in response.json()}


async def test_a_frigate_stream_shows_as_the_cameras_detections_and_state(frigate_hub: tuple[HubRun, str]) -> None:
    run, prefix = frigate_hub
    await run.publish(f"{prefix}/available", b"online", retain=True)
    await eventually(lambda: devices(run), what="the cameras listed")
    await eventually(lambda: _online(run, {"cam-lane-n", "cam-b3-facade"}), what="Frigate's cameras online")
    await run.publish_many([(f"{prefix}/events", fixture(name))
                            for name in ("event_new.json", "event_update.json", "event_end.json")])
    await run.publish(f"{prefix}/events", fixture("event_throw_new.json"))
    await eventually(lambda: run.hub.pipeline.stats.accepted[("camera", "event")] >= 5, what="the detections")
    await run.stored()
    rows = await run.events(site="sunshine", kind="camera")
    seen = {(r["device"], r.get("label"), r.get("phase")) for r in rows}
    assert {("cam-lane-n", "person", "start"), ("cam-lane-n", "person", "update"), ("cam-lane-n", "person", "end"),
            ("cam-lane-n", "fire_lane_blocked", "start"), ("cam-lane-n", "fire_lane_blocked", "end"),
            ("cam-b3-facade", "high_altitude_throw", "start")} <= seen
    start = next(r for r in rows if r.get("label") == "person" and r.get("phase") == "start")
    assert start["snapshot"] == f"{API}/api/events/1764614400.123456-ab12cd/snapshot.jpg"
    alert = await eventually(lambda: run.hub.alert_store.find(10, device="cam-b3-facade"), what="the throw's alert")
    assert [a.code for a in alert] == ["high_altitude_throw"]  # the kind's own rule, as for a native camera

    await run.publish(f"{prefix}/available", b"offline", retain=True)
    await eventually(lambda: _online(run, set(), {"cam-lane-n", "cam-b3-facade"}), what="the cameras offline")
    await run.publish(f"{prefix}/available", b"", retain=True)  # leave no retained message on the shared broker


async def _online(run: HubRun, want: set[str], among: set[str] | None = None) -> bool:
    rows = await devices(run)
    names = among or want
    return {d for d in names if rows.get(d, {}).get("online")} == want


async def test_unknown_cameras_and_malformed_payloads_are_dead_lettered_with_frigates_payload(
        frigate_hub: tuple[HubRun, str]) -> None:
    run, prefix = frigate_hub
    stranger = json.loads(fixture("event_new.json"))
    stranger["after"]["camera"] = "garage"
    stranger_bytes = orjson.dumps(stranger)
    await run.publish_many([(f"{prefix}/events", stranger_bytes), (f"{prefix}/events", b"{not json"),
                            (f"{prefix}/garage/status/detect", b"offline")])
    await eventually(lambda: run.hub.pipeline.stats.rejected[("camera", "frigate_malformed")] >= 1,
                     what="the malformed one refused")
    await eventually(lambda: run.hub.pipeline.stats.rejected[("camera", "frigate_unknown_camera")] >= 2,
                     what="the unknown cameras refused")
    run.hub.pipeline.flush()
    response = await run.api.get("/api/deadletters", params={"limit": 10})
    assert response.status_code == 200, response.text
    kept = {(d["topic"], d["reason"]) for d in response.json()}
    assert {(f"{prefix}/events", "frigate_unknown_camera"), (f"{prefix}/events", "frigate_malformed"),
            (f"{prefix}/garage/status/detect", "frigate_unknown_camera")} <= kept
    payloads = [d.get("payload") for d in response.json() if d["reason"] == "frigate_unknown_camera"]
    assert any("garage" in str(p) for p in payloads)
    assert run.hub.pipeline.stats.accepted[("camera", "event")] == 0


def test_the_broker_files_let_the_hub_read_what_its_adapters_consume(monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.adapters import load

    monkeypatch.setenv("SMARTHUB_FRIGATE_TOPIC_PREFIX", "frigate")
    reads = mqtt_filters(load(["adapters.ocpp", "adapters.frigate"]))
    _, acl = broker_files([], "community", "mqtt://hub:secret@localhost:1883", reads)
    hub_block = acl.split("user hub\n")[1].split("\n\n")[0].splitlines()
    assert "topic read frigate/events" in hub_block and "topic read frigate/+/status/+" in hub_block
    assert not any(line.startswith("topic write frigate") for line in hub_block)  # read, never write


async def test_a_frigate_message_is_acknowledged_only_after_the_outbox_commit(
        frigate_hub: tuple[HubRun, str]) -> None:
    """The outbox fails once: Frigate's message is not acknowledged, the broker sends it again (DUP), and its
    detection is stored once, as for a contract message (hub/mqtt.py)."""
    run, prefix = frigate_hub
    hub, failures = run.hub, []
    commit = hub.outbox.commit

    def failing_commit(*args: Any, **kwargs: Any) -> None:
        if not failures:
            failures.append(1)
            raise sqlite3.OperationalError("disk I/O error")
        commit(*args, **kwargs)

    hub.outbox.commit = failing_commit  # type: ignore[method-assign]
    await run.publish(f"{prefix}/events", fixture("event_new.json"))
    await eventually(lambda: hub.mqtt.losses >= 1 and hub.mqtt.connected, timeout=15,
                     what="the hub to drop the connection and come back")
    await eventually(lambda: hub.pipeline.stats.redelivered == 1, timeout=10, what="the redelivery")
    await run.stored()
    rows = await run.events(kind="camera", device="cam-lane-n")
    assert [(r["label"], r["phase"]) for r in rows] == [("person", "start")]


async def test_the_simulated_frigate_is_seen_like_the_real_one(
        frigate_hub: tuple[HubRun, str], mosquitto: Broker) -> None:
    """`smarthub simulate --vendor frigate`'s stream, published on the broker, shows as the registry's cameras'
    detections (the fixture's registry names two of the simulator's four cameras: the rest are dead letters)."""
    run, prefix = frigate_hub
    messages = frigate.stream(7, int(time.time() * 1000) - 600_000, 600, prefix)
    sent = await frigate.publish(parse_mqtt_url(mosquitto.url(DEVICE_USER, DEVICE_PASSWORD)), messages, speed=1e6)
    assert sent == len(messages)
    await eventually(lambda: run.hub.pipeline.stats.accepted[("camera", "event")] >= 5, what="simulated detections")
    await run.stored()
    rows = await run.events(site="sunshine", kind="camera", limit=1000)
    assert {r["device"] for r in rows} <= {"cam-lane-n", "cam-b3-facade"} and rows
    assert run.hub.pipeline.stats.rejected[("camera", "frigate_unknown_camera")] >= 1  # lift_b3, gate_east


def test_the_registry_view_keeps_cameras_with_aliases_and_drops_unknown_zone_labels(
        caplog: pytest.LogCaptureFixture) -> None:
    from adapters.frigate.intake import cameras
    from hub.registry import Device, Registry, ZoneRule

    registry = Registry(devices=[
        Device(site="s", kind="camera", device="c1", aliases={"frigate": "front"},
               zones={"lane": ZoneRule(label="fire_lane_blocked"), "roof": ZoneRule(label="ufo_sighted")}),
        Device(site="s", kind="gate", device="g1", aliases={"frigate": "gate_cam"}),  # not a camera: not Frigate's
        Device(site="s", kind="camera", device="c2"),
    ])
    view = cameras(registry)
    assert list(view) == ["front"] and list(view["front"].zones) == ["lane"]
    assert "ufo_sighted" in caplog.text
