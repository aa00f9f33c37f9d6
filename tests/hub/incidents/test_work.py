"""Working an incident as a whole: the pure choices, then the desks wired as the hub wires them, over SQLite."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from devices import REGISTRY as KINDS
from devices.access import FAULTS
from devices.camera import FAULTS as CAMERA_FAULTS
from hub.alerts.desk import OrderDesk
from hub.alerts.engine import AlertEngine
from hub.alerts.models import Alert, TransitionError, acknowledge, open_alert, resolve
from hub.alerts.orders import Sla, WorkOrder, close, create
from hub.alerts.store import AlertStore, OrderStore
from hub.incidents.desk import IncidentDesk
from hub.incidents.merge import Incident, alert_part, place
from hub.incidents.store import IncidentStore
from hub.incidents.work import IncidentWork, to_acknowledge, to_resolve, worked
from hub.registry import Device, Registry
from hub.state import LiveState

pytestmark = pytest.mark.unit

T0 = 1_800_000_000_000
SITE = "sunshine"
REGISTRY = [Device(site=SITE, kind="access", device="door-3"),
            Device(site=SITE, kind="camera", device="cam-1", sees=["door-3"])]


def door(at_ms: int = T0) -> Alert:
    return open_alert(SITE, "access", "door-3", "door_forced", FAULTS["door_forced"], None, at_ms)


def tamper(at_ms: int = T0 + 1_000) -> Alert:
    return open_alert(SITE, "camera", "cam-1", "tamper", CAMERA_FAULTS["tamper"], None, at_ms)


def incident_of(*alerts: Alert, orders: tuple[str, ...] = ()) -> Incident:
    made: Incident | None = None
    for alert in alerts:
        made = place([made] if made else [], alert_part(alert, frozenset({"door-3"})), 60_000)
    assert made is not None
    return replace(made, orders=orders)


def test_acknowledging_takes_the_open_alerts_only() -> None:
    forced, tampered = door(), tamper()
    incident = incident_of(forced, tampered)
    acked = acknowledge(tampered, "王保安", None, T0 + 2_000)
    assert to_acknowledge(incident, {forced.id: forced, tampered.id: acked}) == [forced.id]
    assert to_acknowledge(incident, {tampered.id: acked}) == []  # an alert not found is not guessed at


def test_resolving_closes_orders_first_and_then_the_alerts_no_order_resolves() -> None:
    forced, tampered = door(), tamper()
    order = create(forced, "security", Sla(), "hub", T0 + 1)
    incident = incident_of(forced, tampered, orders=(order.id,))
    alerts = {forced.id: forced, tampered.id: tampered}
    assert to_resolve(incident, alerts, {order.id: order}) == ([order.id], [tampered.id])
    done: dict[str, WorkOrder] = {order.id: close(order, "王保安", None, T0 + 2)}
    assert to_resolve(incident, alerts, done) == ([], [forced.id, tampered.id])
    gone = {a.id: resolve(a, "hub", None, T0 + 3) for a in (forced, tampered)}
    assert to_resolve(incident, gone, done) == ([], [])


def test_the_incidents_own_line_names_who_worked_it_once() -> None:
    incident = incident_of(door())
    once = worked(incident, "acknowledged", "王保安", "on my way", T0 + 5_000)
    twice = worked(once, "resolved", "王保安", None, T0 + 9_000)
    assert [(e.by, e.action, e.ref, e.text) for e in twice.timeline[-2:]] == [
        ("王保安", "incident acknowledged", incident.id, "on my way"),
        ("王保安", "incident resolved", incident.id, None)]
    assert twice.people == ("王保安",) and twice.last_ms == T0 + 9_000 and twice.anchor_ms == T0 + 9_000
    assert worked(incident, "resolved", "hub", None, T0).people == ()  # a machine is not one of its people


class Wired:
    """The alert engine, the order desk and the incident desk, told of each other's changes as the hub's
    events tell them (synchronously, in the hub's order)."""

    def __init__(self, path: Path) -> None:
        self.now = T0
        store = AlertStore(path)
        self.told: list[Incident] = []
        self.engine = AlertEngine(KINDS, store, LiveState(), Registry(devices=REGISTRY), self._alert,
                                  clock=lambda: self.now)
        self.desk = OrderDesk(OrderStore(store), self.engine, self._order, clock=lambda: self.now)
        self.incidents = IncidentDesk(IncidentStore(store), Registry(devices=REGISTRY), self.told.append,
                                      window_s=60, clock=lambda: self.now)
        self.work = IncidentWork(self.incidents, self.engine, self.desk, clock=lambda: self.now)

    def _alert(self, alert: Alert) -> None:
        self.incidents.on_alert(alert)  # first, as in the hub: the order a new alert opens then finds its incident
        self.desk.on_alert(alert)

    def _order(self, order: WorkOrder) -> None:
        self.incidents.on_order(order)


def test_an_incident_acknowledged_and_resolved_as_a_whole_moves_its_alerts_and_its_order(tmp_path: Path) -> None:
    hub = Wired(tmp_path / "alerts.db")
    hub.engine._raise(SITE, "access", "door-3", "door_forced", "opened without a pass", T0)
    hub.now += 1_000
    hub.engine._raise(SITE, "camera", "cam-1", "tamper", None, hub.now)
    [incident] = hub.incidents.active.values()
    [order_id] = incident.orders  # door_forced opens its work order by itself
    assert len(incident.alerts) == 2 and incident.state == "open"

    hub.now += 1_000
    acked = hub.work.ack(incident.id, "王保安", "on my way")
    assert acked is not None and acked.state == "acknowledged" and acked.people == ("王保安",)
    assert {hub.engine.find(ref).state for ref in acked.alerts} == {"acknowledged"}  # type: ignore[union-attr]
    assert hub.desk.store.get(order_id).state == "open"  # type: ignore[union-attr]  # who goes is the dispatch's
    assert [e.action for e in acked.timeline[-3:]] == ["alert acknowledged", "alert acknowledged",
                                                       "incident acknowledged"]
    assert hub.told[-1] == acked and hub.incidents.get(incident.id) == acked  # announced, and kept
    with pytest.raises(TransitionError, match="no open alert"):
        hub.work.ack(incident.id, "李师傅", None)

    hub.now += 60_000
    done = hub.work.resolve(incident.id, "李师傅", None)
    assert done is not None and done.state == "resolved" and not hub.incidents.active
    assert done.people == ("王保安", "李师傅")
    order = hub.desk.store.get(order_id)
    assert order is not None and order.state == "resolved" and order.notes[-1].by == "李师傅"
    assert {(a.state, a.resolved_by) for a in map(hub.engine.find, done.alerts)} == {  # type: ignore[union-attr]
        ("resolved", "李师傅")}
    assert done.timeline[-1].action == "incident resolved" and hub.incidents.store.get(incident.id) == done
    with pytest.raises(TransitionError, match="already resolved"):
        hub.work.resolve(incident.id, "李师傅", None)
    assert hub.work.ack("nope", "x", None) is None and hub.work.resolve("nope", "x", None) is None
