"""The incident desk over a real SQLite file: events join, orders follow their alert, a restart keeps it all."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.access import FAULTS
from devices.base import Accepted
from devices.camera import Detection
from hub.alerts.models import acknowledge, open_alert, resolve
from hub.alerts.orders import Sla, create
from hub.alerts.store import AlertStore
from hub.incidents.desk import IncidentDesk
from hub.incidents.merge import Incident
from hub.incidents.store import IncidentStore
from hub.registry import Device, Registry
from hub.state import DeviceState

pytestmark = pytest.mark.unit

T0 = 1_800_000_000_000
SITE = "sunshine"
REGISTRY = [Device(site=SITE, kind="access", device="door-3"),
            Device(site=SITE, kind="camera", device="cam-1", sees=["door-3"])]


def desk_at(path: Path, told: list[Incident]) -> IncidentDesk:
    return IncidentDesk(IncidentStore(AlertStore(path)), Registry(devices=REGISTRY), told.append, window_s=60,
                        clock=lambda: T0)


def detection(event_id: str, at_ms: int, device: str = "cam-1") -> Accepted:
    payload = Detection(type="detection", label="person", phase="start", score=0.8, id=event_id)
    return Accepted(SITE, "camera", device, "event", payload, at_ms, at_ms, 0)


def test_events_join_orders_follow_and_a_restart_keeps_the_incident(tmp_path: Path) -> None:
    told: list[Incident] = []
    desk = desk_at(tmp_path / "alerts.db", told)
    state = DeviceState(SITE, "camera", "cam-1")
    desk.on_message(detection("early", T0 - 5_000), state)  # before the fault: remembered, no incident
    assert not told
    alert = open_alert(SITE, "access", "door-3", "door_forced", FAULTS["door_forced"], None, T0)
    desk.on_alert(alert)
    desk.on_message(detection("d1", T0 + 1_000), state)
    desk.on_message(detection("far", T0 + 1_000, device="cam-7"), state)  # sees nothing of the door
    [incident] = desk.active.values()
    assert [p.ref for p in incident.parts] == [alert.id, "early", "d1"] and len(told) == 2

    order = create(alert, "security", Sla(), "hub", T0 + 2_000)
    desk.on_order(order)
    desk.on_alert(acknowledge(alert, "王保安", None, T0 + 3_000))

    again = desk_at(tmp_path / "alerts.db", told)  # a restart: the same incident, not a second one
    [kept] = again.active.values()
    assert kept == desk.active[incident.id] and kept.orders == (order.id,) and kept.state == "acknowledged"
    again.on_alert(resolve(acknowledge(alert, "王保安", None, T0 + 3_000), "王保安", None, T0 + 4_000))
    assert not again.active and told[-1].state == "resolved"
    assert again.store.of(order.id) == told[-1]  # a late order change still finds it
    assert [i.id for i in again.store.find(state="resolved")] == [incident.id]
    assert again.store.find(since_ms=T0 + 5_000) == []


def test_an_alert_resolved_before_the_desk_knew_it_makes_nothing(tmp_path: Path) -> None:
    told: list[Incident] = []
    desk = desk_at(tmp_path / "alerts.db", told)
    alert = open_alert(SITE, "access", "door-3", "door_forced", FAULTS["door_forced"], None, T0)
    desk.on_alert(resolve(alert, "hub", None, T0 + 1))
    assert told == [] and not desk.active
