"""`GET /api/overview` on both backends: counts after known messages, vehicles inside across a restart, roles."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import devices
from hub.config import Settings
from hub.overview import today_counts
from hub.settled import Settled
from hub.tally import TodayTally
from tests.support.hub_fixtures import HubRun, eventually, running_hub
from tests.support.mqtt_fixtures import Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]

PASSAGE = {"type": "passage", "plate_color": "blue", "lane": "1", "vehicle_class": "car", "confidence": 0.9,
           "category": "resident"}
PLATES = ["琼A10001", "琼A10002", "琼B20003", "粤BD12345", "琼C30005"]
REGISTRY = """
[sites.sunshine]
power_cap_kw = 60

[sites.moonlight]
power_cap_kw = 40.5

[[devices]]
site = "sunshine"
kind = "elevator"
device = "e4"
"""


def passage(i: int, plate: str, direction: str, decision: str = "allowed") -> dict[str, Any]:
    return PASSAGE | {"id": f"p{i}", "plate": plate, "direction": direction, "decision": decision}


def access(i: int, result: str) -> dict[str, Any]:
    return {"type": "access", "id": f"a{i}", "method": "face", "subject": f"resident-{i}", "result": result}


def detection(event_id: str, phase: str, seq: int) -> dict[str, Any]:
    return {"type": "detection", "id": event_id, "label": "intrusion", "phase": phase, "score": 0.8, "seq": seq}


async def publish_and_store(run: HubRun, messages: list[tuple[str, Any]]) -> None:
    before = sum(run.hub.pipeline.stats.accepted.values())
    await run.publish_many(messages)
    await eventually(lambda: sum(run.hub.pipeline.stats.accepted.values()) == before + len(messages),
                     what=f"{len(messages)} messages")
    await run.stored()


def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(REGISTRY, encoding="utf-8")
    return path


async def test_overview_counts_what_was_published(
    settings_for: Callable[..., Settings], mosquitto: Broker, backend: str, tmp_path: Path
) -> None:
    async with running_hub(settings_for(backend, registry=registry_file(tmp_path)), mosquitto) as run:
        gate, other_gate = run.topic("gate", "g1", "event"), run.topic("gate", "g9", "event", site="moonlight")
        messages: list[tuple[str, Any]] = [
            (gate, passage(1, PLATES[0], "in")),
            (gate, passage(2, PLATES[1], "in")),
            (gate, passage(3, PLATES[2], "in", "manual")),
            (gate, passage(4, PLATES[3], "in", "denied")),  # counted as a passage, never inside
            (gate, passage(5, PLATES[0], "out")),
            (other_gate, passage(6, PLATES[4], "in")),
            *[(run.topic("access", "d1", "event"), access(i, "granted")) for i in range(3)],
            (run.topic("access", "d2", "event"), access(3, "denied")),
            (run.topic("camera", "c1", "event"), detection("x1", "start", 1)),
            (run.topic("camera", "c1", "event"), detection("x1", "update", 2)),
            (run.topic("camera", "c1", "event"), detection("x1", "end", 3)),
            (run.topic("camera", "c2", "event"), detection("x2", "start", 1)),
            (run.topic("charger", "ev1", "telemetry"), {"status": "charging", "power_kw": 7.2}),
            (run.topic("charger", "ev2", "telemetry"), {"status": "available", "power_kw": 0}),
            (run.topic("charger", "ev3", "telemetry", site="moonlight"), {"status": "charging", "power_kw": 3.3}),
            (run.topic("charger", "ev2", "event"), {"type": "session_stop", "id": "s1", "session": "S1",
                                                     "energy_kwh": 12.5, "duration_s": 3600, "reason": "local"}),
            (run.topic("charger", "ev2", "event"), {"type": "session_stop", "id": "s2", "session": "S2",
                                                     "energy_kwh": 3.25, "duration_s": 600, "reason": "remote"}),
            (run.topic("elevator", "e1", "telemetry"), {"mode": "normal", "floor": 3}),
            (run.topic("elevator", "e2", "telemetry"), {"mode": "maintenance", "floor": 1}),
            (run.topic("elevator", "e3", "event"), {"type": "fault", "code": "overspeed", "active": True}),
            (run.topic("gate", "g1", "event"), {"type": "fault", "code": "loop_detector_fault", "active": True}),
            (run.topic("meter", "w1", "telemetry"), {"utility": "water", "reading": 10.5, "flow_lph": 0}),
            (run.topic("meter", "w2", "telemetry"), {"utility": "water", "reading": 3.0, "flow_lph": 12}),
            (run.topic("meter", "w2", "event"), {"type": "fault", "id": "l1", "code": "leak_suspected",
                                                 "active": True}),
            (run.topic("meter", "p1", "telemetry"), {"utility": "electricity", "reading": 4821.4, "power_kw": 1.2}),
            (run.topic("meter", "w1", "telemetry"), {"utility": "water", "reading": 11.25, "flow_lph": 0}),
            (run.topic("meter", "p1", "telemetry"), {"utility": "electricity", "reading": 4823.9, "power_kw": 1.2}),
        ]
        await publish_and_store(run, messages)
        [overspeed] = [a for a in (await run.api.get("/api/alerts")).json() if a["code"] == "overspeed"]
        assert (await run.api.post(f"/api/alerts/{overspeed['id']}/ack", json={"by": "tester"})).status_code == 200

        response = await run.api.get("/api/overview", params={"site": run.site})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) >= {"time", "site", "devices", "vehicles", "access", "detections_today", "alerts",
                             "elevators", "chargers", "kinds"}
        sections = {k.overview.key for k in devices.REGISTRY.values() if k.overview and k.overview.key}
        assert set(body) - {"time", "site", "devices", "alerts", "kinds"} == sections | {"detections_today"}, \
            "the top level holds the kinds' own sections, every one (none filtered out by the response model)"
        assert body["site"] == run.site
        assert body["devices"] == {kind: {"total": 0, "online": 0, "faulted": 0} for kind in devices.REGISTRY} | {
            "gate": {"total": 1, "online": 1, "faulted": 1},
            "access": {"total": 2, "online": 2, "faulted": 0},
            "camera": {"total": 2, "online": 2, "faulted": 0},
            "elevator": {"total": 4, "online": 3, "faulted": 1},  # e4 is registered but never heard
            "charger": {"total": 2, "online": 2, "faulted": 0},
            "meter": {"total": 3, "online": 3, "faulted": 1},
        }, "every registered kind is counted, none with devices of another"
        assert body["vehicles"] == {"in_today": 4, "out_today": 1, "inside": 2}
        assert body["access"] == {"granted_today": 3, "denied_today": 1}
        assert body["detections_today"] == 2
        assert body["alerts"] == {"open": {"critical": 0, "major": 1, "minor": 1, "info": 0},
                                  "acknowledged": {"critical": 1, "major": 0, "minor": 0, "info": 0}}
        assert body["elevators"] == {"total": 4, "in_service": 1, "availability": 0.25}
        assert body["chargers"] == {"total": 2, "charging": 1, "kw": 7.2, "cap_kw": 60.0, "kwh_today": 15.75}
        kinds = body["kinds"]
        assert set(kinds) == set(devices.REGISTRY), "every registered kind has its summary"
        assert {k: {n: v for n, v in row.items() if n != "figures"} for k, row in kinds.items()} == body["devices"]
        assert kinds["charger"]["figures"] == body["chargers"] and kinds["elevator"]["figures"] == body["elevators"]
        assert kinds["gate"]["figures"] == body["vehicles"] and kinds["access"]["figures"] == body["access"]
        assert kinds["camera"]["figures"] == {"detections_today": 2}
        assert kinds["meter"]["figures"] == body["meters"] == {"water_online": 2, "electricity_online": 1,
                                                               "open_leaks": 1, "water_today": 0.75,
                                                               "electricity_today": 2.5}

        everywhere = (await run.api.get("/api/overview")).json()
        assert everywhere["site"] is None
        assert everywhere["vehicles"] == {"in_today": 5, "out_today": 1, "inside": 3}
        assert everywhere["chargers"] == {"total": 3, "charging": 2, "kw": 10.5, "cap_kw": 100.5,
                                          "kwh_today": 15.75}
        nowhere = (await run.api.get("/api/overview", params={"site": "nowhere"})).json()
        assert nowhere["devices"]["elevator"] == {"total": 0, "online": 0, "faulted": 0}
        assert nowhere["elevators"] == {"total": 0, "in_service": 0, "availability": 1.0}
        assert nowhere["chargers"]["cap_kw"] is None and nowhere["vehicles"]["in_today"] == 0


async def test_a_viewer_may_read_the_overview_and_sees_no_plate(hub_run: HubRun) -> None:
    run = hub_run
    await publish_and_store(run, [(run.topic("gate", "g1", "event"), passage(i, plate, "in"))
                                  for i, plate in enumerate(PLATES)])
    token = run.hub.users.add("wall-screen", "viewer")
    response = await run.api.get("/api/overview", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert (await run.api.get("/api/overview", headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert response.json()["vehicles"]["inside"] == len(PLATES)
    assert not any(plate in response.text or plate[1:] in response.text for plate in PLATES)


async def test_vehicles_inside_are_rebuilt_after_a_restart(
    settings_for: Callable[..., Settings], mosquitto: Broker, backend: str
) -> None:
    settings = settings_for(backend, screen_cache_s=0)  # asked again right after each change
    async with running_hub(settings, mosquitto) as run:
        gate = run.topic("gate", "g1", "event")
        await publish_and_store(run, [
            (gate, passage(1, PLATES[0], "in")), (gate, passage(2, PLATES[1], "in")),
            (gate, passage(3, PLATES[2], "in", "denied")), (gate, passage(4, PLATES[3], "in", "manual")),
            (gate, passage(5, PLATES[1], "out")),
        ])
        await eventually(lambda: run.hub.inside.ready, what="tracker ready")
        before = (await run.api.get("/api/overview")).json()["vehicles"]
        assert before == {"in_today": 4, "out_today": 1, "inside": 2}
    async with running_hub(settings, mosquitto) as run:
        await eventually(lambda: run.hub.inside.ready, what="tracker rebuilt")
        assert (await run.api.get("/api/overview")).json()["vehicles"] == before
        await publish_and_store(run, [(run.topic("gate", "g1", "event"), passage(6, PLATES[0], "out"))])
        assert (await run.api.get("/api/overview")).json()["vehicles"]["inside"] == 1


async def test_the_tally_counts_today_as_the_store_does(
    settings_for: Callable[..., Settings], mosquitto: Broker, backend: str, tmp_path: Path
) -> None:
    """The overview's last hour comes from `hub.tally` instead of the store: same figures, every kind's, both
    stores, including what the store holds once (a replayed id) and what it counts (a denied passage)."""
    async with running_hub(settings_for(backend, registry=registry_file(tmp_path)), mosquitto) as run:
        now = int(time.time() * 1000)
        tally = TodayTally(run.hub.kinds, now - 3_600_000)  # as if the hub had run for an hour
        run.hub.events.on_message("test-tally", tally.on_message)
        gate = run.topic("gate", "g1", "event")
        messages: list[tuple[str, Any]] = [
            (gate, passage(1, PLATES[0], "in")), (gate, passage(2, PLATES[1], "in", "denied")),
            (gate, passage(3, PLATES[2], "out")), (gate, passage(1, PLATES[0], "in")),  # the same id again
            (run.topic("gate", "g2", "event", site="moonlight"), passage(4, PLATES[3], "in")),
            *[(run.topic("access", "d1", "event"), access(i, ("granted", "denied")[i % 2])) for i in range(5)],
            (run.topic("camera", "c1", "event"), detection("x1", "start", 1)),
            (run.topic("camera", "c1", "event"), detection("x1", "end", 2)),
            (run.topic("charger", "ev2", "event"), {"type": "session_stop", "id": "s1", "session": "S1",
                                                     "energy_kwh": 12.5, "duration_s": 3600, "reason": "local"}),
        ]
        await publish_and_store(run, messages[:3] + messages[4:])
        await run.publish(gate, passage(1, PLATES[0], "in"))  # the replay: dropped before any count
        await eventually(lambda: run.hub.pipeline.stats.duplicates["gate"] == 1, what="the replayed id dropped")
        await run.stored()
        assert tally.total("in_today", None, tally.since_ms, now + 60_000) >= 2, "the tally took part"
        for site in (run.site, "moonlight", None):
            from_store = await today_counts(run.hub.storage, site, int(time.time() * 1000), None, run.hub.kinds)
            with_tally = await today_counts(run.hub.storage, site, int(time.time() * 1000), Settled(),
                                            run.hub.kinds, tally)
            assert with_tally == from_store, site
        assert from_store["in_today"] == 3 and from_store["kwh_today"] == 12.5
