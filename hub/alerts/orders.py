"""Work orders (工单): an alert given to a team, with service-level timers.

Residents are promised dispatch within an hour and a fix within three; for a
trapped passenger the maintenance company must be on site within 30 minutes.
An order records when it was created, dispatched (someone took it), arrived
(on site) and resolved, and each deadline it was measured against; an order
past a deadline is overdue and escalated once. Transitions are pure functions.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hub.alerts.models import Alert, Note, TransitionError, iso

OrderState = Literal["open", "dispatched", "on_site", "resolved"]
ARRIVAL_CODES = frozenset({"trapped_passenger", "trapped_suspected"})
"""Codes for which arrival on site has its own (short) deadline."""


@dataclass(frozen=True, slots=True)
class Sla:
    dispatch_s: float = 3600.0
    resolve_s: float = 3 * 3600.0
    arrive_s: float = 30 * 60.0


@dataclass(frozen=True, slots=True)
class WorkOrder:
    id: str
    alert_id: str
    site: str
    kind: str
    device: str
    code: str
    severity: str
    title: str
    team: str
    created_ms: int
    dispatch_due_ms: int
    resolve_due_ms: int
    arrive_due_ms: int | None = None
    state: OrderState = "open"
    assignee: str | None = None
    dispatched_ms: int | None = None
    arrived_ms: int | None = None
    resolved_ms: int | None = None
    escalated: tuple[str, ...] = ()
    """Deadlines already missed and escalated: 'dispatch', 'arrive', 'resolve'."""
    notes: tuple[Note, ...] = field(default=())

    def missed(self, now_ms: int) -> list[str]:
        """Deadlines missed by now (or by the time the step was done)."""
        out = []
        if (self.dispatched_ms or now_ms) > self.dispatch_due_ms:
            out.append("dispatch")
        if self.arrive_due_ms is not None and (self.arrived_ms or now_ms) > self.arrive_due_ms:
            out.append("arrive")
        if (self.resolved_ms or now_ms) > self.resolve_due_ms:
            out.append("resolve")
        return out

    def to_json(self, now_ms: int) -> dict[str, Any]:
        return {
            "id": self.id, "alert_id": self.alert_id, "site": self.site, "kind": self.kind, "device": self.device,
            "code": self.code, "severity": self.severity, "title": self.title, "team": self.team,
            "state": self.state, "assignee": self.assignee, "created_at": iso(self.created_ms),
            "dispatched_at": iso(self.dispatched_ms), "arrived_at": iso(self.arrived_ms),
            "resolved_at": iso(self.resolved_ms), "dispatch_due": iso(self.dispatch_due_ms),
            "arrive_due": iso(self.arrive_due_ms), "resolve_due": iso(self.resolve_due_ms),
            "overdue": self.missed(now_ms), "escalated": list(self.escalated),
            "notes": [{"at": iso(n.at_ms), "by": n.by, "action": n.action, "text": n.text} for n in self.notes],
        }


def create(alert: Alert, team: str, sla: Sla, by: str, now_ms: int) -> WorkOrder:
    return WorkOrder(
        id=f"WO{now_ms:013d}-{secrets.token_hex(3)}", alert_id=alert.id, site=alert.site, kind=alert.kind,
        device=alert.device, code=alert.code, severity=alert.severity.value, title=alert.title, team=team,
        created_ms=now_ms, dispatch_due_ms=now_ms + int(sla.dispatch_s * 1000),
        resolve_due_ms=now_ms + int(sla.resolve_s * 1000),
        arrive_due_ms=now_ms + int(sla.arrive_s * 1000) if alert.code in ARRIVAL_CODES else None,
        notes=(Note(now_ms, by, "created", f"team {team}"),),
    )


def dispatch(order: WorkOrder, assignee: str, by: str, note: str | None, now_ms: int) -> WorkOrder:
    if order.state != "open":
        raise TransitionError(f"order {order.id} is {order.state}; only an open order can be dispatched")
    return replace(order, state="dispatched", assignee=assignee, dispatched_ms=now_ms,
                   notes=(*order.notes, Note(now_ms, by, "dispatched", note or f"to {assignee}")))


def arrive(order: WorkOrder, by: str, note: str | None, now_ms: int) -> WorkOrder:
    if order.state != "dispatched":
        raise TransitionError(f"order {order.id} is {order.state}; arrive after dispatch")
    return replace(order, state="on_site", arrived_ms=now_ms, notes=(*order.notes, Note(now_ms, by, "arrived", note)))


def close(order: WorkOrder, by: str, note: str | None, now_ms: int) -> WorkOrder:
    if order.state == "resolved":
        raise TransitionError(f"order {order.id} is already resolved")
    return replace(order, state="resolved", resolved_ms=now_ms,
                   dispatched_ms=order.dispatched_ms or now_ms,  # fixed without a dispatch step: dispatched now
                   notes=(*order.notes, Note(now_ms, by, "resolved", note)))


def escalate(order: WorkOrder, deadlines: list[str], now_ms: int) -> WorkOrder:
    return replace(order, escalated=(*order.escalated, *deadlines),
                   notes=(*order.notes, Note(now_ms, "hub", "overdue", ", ".join(deadlines))))


def report(orders: list[WorkOrder], now_ms: int) -> dict[str, Any]:
    """Compliance per team: how many orders, and the share that met each deadline."""
    teams: dict[str, list[WorkOrder]] = {}
    for order in orders:
        teams.setdefault(order.team, []).append(order)
    out = {}
    for team, group in sorted(teams.items()):
        def share(step: str, among: list[WorkOrder]) -> float | None:
            return round(sum(step not in o.missed(now_ms) for o in among) / len(among), 4) if among else None

        with_arrival = [o for o in group if o.arrive_due_ms is not None]
        done = [o for o in group if o.resolved_ms is not None]
        out[team] = {
            "orders": len(group), "resolved": len(done),
            "dispatched_on_time": share("dispatch", group), "arrived_on_time": share("arrive", with_arrival),
            "resolved_on_time": share("resolve", group),
            "mean_resolve_s": round(sum(o.resolved_ms - o.created_ms for o in done) / len(done) / 1000, 1)  # type: ignore[operator]
            if done else None,
        }
    return out
