"""Merging alerts and events into incidents: the forced door seen by cameras is one incident, not four items."""

from __future__ import annotations

import pytest

from devices.access import FAULTS
from devices.base import Severity
from hub.alerts.models import acknowledge, open_alert, resolve
from hub.alerts.orders import Sla, create, dispatch
from hub.incidents.merge import (
    MAX_EVENTS,
    Incident,
    Part,
    alert_part,
    event_part,
    place,
    places_of,
    with_alert,
    with_order,
)
from hub.registry import Device

pytestmark = pytest.mark.unit

T0 = 1_800_000_000_000
WINDOW = 5 * 60_000
SITE = "sunshine"
DOOR = Device(site=SITE, kind="access", device="door-3", place="east-entrance")
CAM1 = Device(site=SITE, kind="camera", device="cam-1", sees=["door-3"])
CAM2 = Device(site=SITE, kind="camera", device="cam-2", sees=["east-entrance"])
LANE = Device(site=SITE, kind="gate", device="lane-2", place="east-entrance")
ELSEWHERE = Device(site=SITE, kind="camera", device="cam-9", sees=["door-7"])


def forced(at_ms: int = T0, device: Device = DOOR):  # type: ignore[no-untyped-def]
    return open_alert(device.site, device.kind, device.device, "door_forced", FAULTS["door_forced"], None, at_ms)


def seen(device: Device, at_ms: int, title: str = "detection person") -> Part:
    return event_part(device.site, device.kind, device.device, f"{device.device}-{at_ms}", at_ms, title,
                      places_of(device, device.device), {"label": "person"})


def run(parts: list[Part]) -> list[Incident]:
    """Feed parts in order, keeping every incident as the desk would."""
    incidents: dict[str, Incident] = {}
    for part in parts:
        changed = place(incidents.values(), part, WINDOW)
        if changed is not None:
            incidents[changed.id] = changed
    return list(incidents.values())


def test_places_are_the_device_or_its_place_plus_what_it_sees() -> None:
    assert places_of(DOOR, "door-3") == {"door-3", "east-entrance"}
    assert places_of(CAM1, "cam-1") == {"cam-1", "door-3"}
    assert places_of(None, "x") == {"x"}
    assert places_of(Device(site=SITE, kind="access", device="door-3"), "door-3") == {"door-3"}


def test_a_forced_door_seen_by_two_cameras_and_its_lane_is_one_incident() -> None:
    alert = forced()
    door = alert_part(alert, places_of(DOOR, "door-3"))
    parts = [door, seen(CAM1, T0 + 2_000), seen(CAM2, T0 + 4_000),
             seen(LANE, T0 + 30_000, "passage 琼A12345")]
    [incident] = run(parts)
    assert len(incident.parts) == 4 and len(incident.timeline) == 4
    assert incident.severity == Severity.CRITICAL and incident.state == "open"
    assert incident.title == "强行开门" and incident.title_en == "Door forced open"
    assert incident.alerts == (alert.id,)
    assert [e.ref for e in incident.timeline] == [p.ref for p in parts]
    assert incident.opened_ms == T0 and incident.last_ms == T0 + 30_000


def test_outside_the_window_or_at_another_place_is_separate() -> None:
    door = alert_part(forced(), places_of(DOOR, "door-3"))
    late = seen(CAM1, T0 + WINDOW + 1)
    other = alert_part(forced(T0 + 1_000, Device(site=SITE, kind="access", device="door-7")),
                       frozenset({"door-7"}))
    incidents = run([door, late, other, seen(ELSEWHERE, T0 + 2_000)])
    assert sorted(len(i.parts) for i in incidents) == [1, 2]
    [at_door] = [i for i in incidents if i.alerts == (door.ref,)]
    assert len(at_door.parts) == 1  # the late detection joined nothing


def test_another_site_with_the_same_names_is_separate() -> None:
    door = alert_part(forced(), places_of(DOOR, "door-3"))
    there = Device(site="moonlight", kind="camera", device="cam-1", sees=["door-3"])
    [incident] = run([door, seen(there, T0 + 1_000)])
    assert len(incident.parts) == 1


def test_an_event_alone_opens_no_incident_but_is_pulled_in_when_an_alert_follows() -> None:
    early = seen(CAM1, T0 - 3_000)
    assert place([], early, WINDOW) is None
    incident = place([], alert_part(forced(), places_of(DOOR, "door-3")), WINDOW, recent=[early, seen(ELSEWHERE, T0)])
    assert incident is not None and [p.ref for p in incident.parts] == [incident.alerts[0], early.ref]
    assert incident.opened_ms == T0 - 3_000


def test_severity_is_the_worst_part_and_the_title_follows_it() -> None:
    held = open_alert(SITE, "access", "door-3", "door_held_open", FAULTS["door_held_open"], None, T0)
    [incident] = run([alert_part(held, places_of(DOOR, "door-3")),
                      alert_part(forced(T0 + 1_000), places_of(DOOR, "door-3"))])
    assert incident.severity == Severity.CRITICAL and incident.title_en == "Door forced open"


def test_acknowledge_order_and_resolve_go_on_the_timeline_with_the_people() -> None:
    alert = forced()
    [incident] = run([alert_part(alert, places_of(DOOR, "door-3")), seen(CAM1, T0 + 1_000)])
    acked = acknowledge(alert, "王保安", "on my way", T0 + 60_000)
    incident = with_alert(incident, acked)
    assert incident.state == "acknowledged" and incident.people == ("王保安",)
    order = dispatch(create(acked, "security", Sla(), "hub", T0 + 61_000), "李师傅", "王保安", None, T0 + 62_000)
    incident = with_order(incident, order)
    assert incident.orders == (order.id,) and incident.people == ("王保安", "李师傅")
    incident = with_alert(incident, resolve(acked, "李师傅", "door repaired", T0 + 90_000))
    assert incident.state == "resolved" and not incident.active
    assert [e.action for e in incident.timeline][-3:] == ["alert acknowledged", "order dispatched", "alert resolved"]
    assert place([incident], seen(CAM1, T0 + 91_000), WINDOW) is None  # a resolved incident takes nothing more


def test_events_joining_do_not_stretch_the_window_but_actions_do() -> None:
    alert = forced()
    door = alert_part(alert, places_of(DOOR, "door-3"))
    steps = [door, *(seen(LANE, T0 + k * WINDOW // 2) for k in range(1, 4))]  # every half window, a car
    [incident] = run(steps)
    assert len(incident.parts) == 3  # the third car is past the window of the door's fault
    acked = with_alert(incident, acknowledge(alert, "王保安", None, T0 + WINDOW + 10_000))
    assert place([acked], seen(LANE, T0 + 2 * WINDOW), WINDOW) is not None  # someone is working it: still live


def test_a_busy_lane_is_counted_beyond_the_cap_not_kept() -> None:
    parts = [alert_part(forced(), places_of(DOOR, "door-3"))]
    parts += [seen(LANE, T0 + i * 100) for i in range(1, MAX_EVENTS + 6)]
    [incident] = run(parts)
    assert len(incident.parts) == MAX_EVENTS + 1 and incident.more_events == 5


def test_json_lists_the_raw_ids_one_click_away() -> None:
    alert = forced()
    [incident] = run([alert_part(alert, places_of(DOOR, "door-3")), seen(CAM1, T0 + 1_000)])
    data = incident.to_json()
    assert data["alerts"] == [alert.id] and data["events"] == [f"cam-1-{T0 + 1_000}"]
    assert data["severity"] == "critical" and data["state"] == "open" and len(data["timeline"]) == 2
