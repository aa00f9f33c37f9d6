"""Incidents past the personal-data retention: their parts' plates and subjects go, the rest stays (real SQLite,
a clock the test moves)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices import REGISTRY as KINDS
from devices.access import FAULTS
from devices.base import Accepted
from devices.camera import Detection
from devices.gate import Passage
from hub.alerts.models import open_alert, resolve
from hub.alerts.store import AlertStore
from hub.incidents.desk import IncidentDesk
from hub.incidents.merge import Incident, event_part
from hub.incidents.retention import FORGOTTEN, forget_personal, forgotten, personal_of
from hub.incidents.store import IncidentStore
from hub.registry import Device, Registry
from hub.state import DeviceState

pytestmark = pytest.mark.unit

T0 = 1_800_000_000_000
DAY_MS = 86_400_000
SITE = "sunshine"
PERSONAL = personal_of(KINDS)
REGISTRY = [Device(site=SITE, kind="access", device="door-3", place="east"),
            Device(site=SITE, kind="camera", device="cam-1", sees=["door-3"]),
            Device(site=SITE, kind="gate", device="lane-2", place="east")]
PLATE = {"type": "passage", "plate": "琼A12345", "plate_color": "blue", "direction": "in", "lane": "2",
         "vehicle_class": "car", "confidence": 0.9, "decision": "allowed", "category": "resident",
         "image": "http://nvr.local/lane-2/p1.jpg"}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def passage(event_id: str, at_ms: int) -> Accepted:
    return Accepted(SITE, "gate", "lane-2", "event", Passage(**PLATE, id=event_id), at_ms, at_ms, 0)  # type: ignore[arg-type]


def detection(event_id: str, at_ms: int) -> Accepted:
    payload = Detection(type="detection", label="person", phase="start", score=0.8, id=event_id)
    return Accepted(SITE, "camera", "cam-1", "event", payload, at_ms, at_ms, 0)


def test_personal_fields_of_old_parts_go_and_nothing_else_does() -> None:
    places = frozenset({"east"})
    old = event_part(SITE, "gate", "lane-2", "p1", T0, "passage", places, dict(PLATE))
    seen = event_part(SITE, "camera", "cam-1", "d1", T0, "detection", places, {"label": "person"})
    late = event_part(SITE, "gate", "lane-2", "p2", T0 + DAY_MS, "passage", places, dict(PLATE))
    incident = Incident("i1", SITE, T0, T0 + DAY_MS, "t", "t", (old, seen, late), (), places)
    kept = forgotten(incident, T0 + 1, PERSONAL)
    first, camera, second = kept.parts
    assert "plate" not in first.fields and "image" not in first.fields and first.fields[FORGOTTEN] is True
    assert first.fields["direction"] == "in" and camera is seen and second is late
    assert forgotten(kept, T0 + 1, PERSONAL) is kept  # nothing left to forget: the same object, nothing to write
    assert forgotten(incident, T0, PERSONAL) is incident  # not older than the horizon


def test_old_incidents_forget_plates_in_the_store_and_on_the_desk_and_a_restart_keeps_it(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "alerts.db"

    def desk_at() -> IncidentDesk:
        return IncidentDesk(IncidentStore(AlertStore(path)), Registry(devices=REGISTRY), lambda i: None,
                            window_s=60, clock=clock)

    desk = desk_at()
    lane = DeviceState(SITE, "gate", "lane-2")
    old_alert = open_alert(SITE, "access", "door-3", "door_forced", FAULTS["door_forced"], None, T0)
    desk.on_alert(old_alert)
    desk.on_message(passage("p-old", T0 + 1_000), lane)
    desk.on_message(detection("d-old", T0 + 2_000), lane)
    clock.now = T0 + 80 * DAY_MS  # another forced door, 80 days later, its plate still young
    new_alert = open_alert(SITE, "access", "door-3", "door_forced", FAULTS["door_forced"], None, clock.now)
    desk.on_alert(resolve(old_alert, "王保安", None, clock.now - 1))
    desk.on_alert(new_alert)
    desk.on_message(passage("p-new", clock.now + 1_000), lane)
    old, new = (desk.store.of(a.id) for a in (old_alert, new_alert))
    assert old is not None and new is not None and old.id != new.id and "琼A12345" in str(old.parts)

    clock.now = T0 + 91 * DAY_MS  # retention 90 days: the first incident's plate goes, the second's stays
    assert forget_personal(desk, clock.now - 90 * DAY_MS, PERSONAL) == 1
    stored_old, stored_new = desk.store.get(old.id), desk.store.get(new.id)
    assert stored_old is not None and "琼A12345" not in str(stored_old.parts)
    assert [p.ref for p in stored_old.parts] == [p.ref for p in old.parts]  # what happened stays, and who worked it
    assert stored_old.people == ("王保安",) and stored_old.timeline == old.timeline
    assert stored_new == desk.active[new.id] and "琼A12345" in str(stored_new.parts)
    assert forget_personal(desk, clock.now - 90 * DAY_MS, PERSONAL) == 0

    clock.now = T0 + 171 * DAY_MS  # the second, still active, is old too now: the desk's copy goes with it
    assert forget_personal(desk, clock.now - 90 * DAY_MS, PERSONAL) == 1
    assert "琼A12345" not in str(desk.active[new.id].parts) and desk.active[new.id] == desk.store.get(new.id)
    again = desk_at()  # a restart: the horizon is in the file, nothing is read twice
    assert forget_personal(again, clock.now - 90 * DAY_MS, PERSONAL) == 0
    assert again.active == desk.active


def test_an_active_incident_on_the_desk_forgets_with_the_store(tmp_path: Path) -> None:
    clock = Clock()
    desk = IncidentDesk(IncidentStore(AlertStore(tmp_path / "alerts.db")), Registry(devices=REGISTRY),
                        lambda i: None, window_s=60, clock=clock)
    alert = open_alert(SITE, "access", "door-3", "door_forced", FAULTS["door_forced"], None, T0)
    desk.on_alert(alert)
    desk.on_message(passage("p1", T0 + 1_000), DeviceState(SITE, "gate", "lane-2"))
    clock.now = T0 + 100 * DAY_MS
    assert forget_personal(desk, clock.now - 90 * DAY_MS, PERSONAL) == 1
    [active] = desk.active.values()
    assert "琼A12345" not in str(active.parts)
    desk.on_alert(resolve(alert, "李师傅", None, clock.now))  # the desk's next save keeps it forgotten
    assert "琼A12345" not in str(desk.store.get(active.id))
