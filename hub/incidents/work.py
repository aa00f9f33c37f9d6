"""Working an incident as a whole: acknowledge or resolve it, and its alerts and work orders go with it.

A forced door is one incident of four items; the person who takes it should not have to take each alert.
Acknowledging an incident acknowledges its open alerts; resolving it closes its open work orders (which
resolve their alerts, as `OrderDesk.resolve` does) and then resolves the alerts still active. Acknowledging
leaves the work orders alone: someone in the control room has seen it, which says nothing about who goes
(that is the order's dispatch, on the maintenance page).

Each alert and order moves through its own desk, so each is stored, audited by its notes, announced on
`WS /api/live` and heard back by the incident desk as if it had been worked one by one; the incident then
gets one line of its own saying who worked it as a whole (`worked`). What to move is decided by pure
functions over the current versions (`to_acknowledge`, `to_resolve`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Literal

from hub.alerts.desk import OrderDesk
from hub.alerts.engine import AlertEngine, wall_clock_ms
from hub.alerts.models import Alert, TransitionError
from hub.alerts.orders import WorkOrder
from hub.incidents.desk import IncidentDesk
from hub.incidents.merge import Entry, Incident, person

Work = Literal["acknowledged", "resolved"]


def to_acknowledge(incident: Incident, alerts: Mapping[str, Alert]) -> list[str]:
    """Its alerts still open, in the incident's order (an alert no longer found is left out)."""
    return [ref for ref in incident.alerts if (a := alerts.get(ref)) is not None and a.state == "open"]


def to_resolve(incident: Incident, alerts: Mapping[str, Alert],
               orders: Mapping[str, WorkOrder]) -> tuple[list[str], list[str]]:
    """(its open work orders, its active alerts that none of those orders will resolve): orders first, so an
    order is closed as done rather than left open behind a resolved alert."""
    closing = [ref for ref in incident.orders if (o := orders.get(ref)) is not None and o.state != "resolved"]
    by_orders = {orders[ref].alert_id for ref in closing}
    active = [ref for ref in incident.alerts
              if (a := alerts.get(ref)) is not None and a.active and ref not in by_orders]
    return closing, active


def worked(incident: Incident, work: Work, by: str, note: str | None, at_ms: int) -> Incident:
    """The incident's own line: who worked it as a whole, now among its people."""
    entry = Entry(at_ms, by, f"incident {work}", incident.id, note)
    return replace(incident, timeline=(*incident.timeline, entry), people=person(incident.people, by),
                   last_ms=max(incident.last_ms, at_ms), anchor_ms=max(incident.anchor_ms, at_ms))


class IncidentWork:
    """The incident-level actions behind `POST /api/incidents/{id}/ack` and `/resolve`."""

    def __init__(self, incidents: IncidentDesk, alerts: AlertEngine, orders: OrderDesk,
                 clock: Callable[[], int] = wall_clock_ms) -> None:
        self.incidents = incidents
        self.alerts = alerts
        self.orders = orders
        self.clock = clock

    def _alerts(self, refs: Iterable[str]) -> dict[str, Alert]:
        return {ref: a for ref in refs if (a := self.alerts.find(ref)) is not None}

    def ack(self, incident_id: str, by: str, note: str | None) -> Incident | None:
        """None: no such incident. Raises TransitionError when none of its alerts is open."""
        incident = self.incidents.get(incident_id)
        if incident is None:
            return None
        refs = to_acknowledge(incident, self._alerts(incident.alerts))
        if not refs:
            raise TransitionError(f"incident {incident_id} is {incident.state}; it has no open alert to acknowledge")
        for ref in refs:
            self.alerts.ack(ref, by, note)
        return self._worked(incident_id, "acknowledged", by, note)

    def resolve(self, incident_id: str, by: str, note: str | None) -> Incident | None:
        """None: no such incident. Raises TransitionError when it is resolved already."""
        incident = self.incidents.get(incident_id)
        if incident is None:
            return None
        found = {ref: o for ref in incident.orders if (o := self.orders.store.get(ref)) is not None}
        closing, active = to_resolve(incident, self._alerts(incident.alerts), found)
        if not closing and not active:
            raise TransitionError(f"incident {incident_id} is already resolved")
        text = note or f"incident {incident_id} resolved"
        for ref in closing:
            self.orders.resolve(ref, by, text)
        for ref in active:
            alert = self.alerts.find(ref)
            if alert is not None and alert.active:  # an order's alert may have been another order's too
                self.alerts.resolve(ref, by, text)
        return self._worked(incident_id, "resolved", by, note)

    def _worked(self, incident_id: str, work: Work, by: str, note: str | None) -> Incident | None:
        current = self.incidents.get(incident_id)  # as its alerts' and orders' changes left it
        return None if current is None else self.incidents.amend(worked(current, work, by, note, self.clock()))
