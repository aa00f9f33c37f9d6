"""The maintenance desk: opens work orders for alerts, moves them along, watches their deadlines.

Which alerts become orders by themselves, and for which team, each kind says (`DeviceKind.work_orders`,
`DeviceKind.team`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from devices.base import DeviceKind
from hub.alerts.engine import AlertEngine, wall_clock_ms
from hub.alerts.models import Alert
from hub.alerts.orders import Sla, WorkOrder, arrive, close, create, dispatch, escalate
from hub.alerts.store import OrderStore

log = logging.getLogger(__name__)

DEFAULT_TEAM = "property"


def auto_orders_of(kinds: Mapping[str, DeviceKind]) -> frozenset[tuple[str, str]]:
    """(kind, code) pairs whose new alert opens a work order by itself."""
    return frozenset((name, code) for name, kind in kinds.items() for code in kind.work_orders)


def teams_of(kinds: Mapping[str, DeviceKind]) -> dict[str, str]:
    """kind -> the team its orders go to, for the kinds that name one."""
    return {name: kind.team for name, kind in kinds.items() if kind.team}


class OrderDesk:
    def __init__(self, store: OrderStore, engine: AlertEngine, notify: Callable[[WorkOrder], None],
                 sla: Mapping[str, Sla] | None = None, auto_orders: frozenset[tuple[str, str]] | None = None,
                 teams: Mapping[str, str] | None = None, clock: Callable[[], int] = wall_clock_ms) -> None:
        """`auto_orders` and `teams` default to what the engine's kinds declare."""
        self.store = store
        self.engine = engine
        self.notify = notify
        self.sla = sla or {}
        """severity -> deadlines; a severity not listed gets the defaults (1 h dispatch, 3 h fix)"""
        self.auto_orders = auto_orders_of(engine.kinds) if auto_orders is None else auto_orders
        self.teams = teams_of(engine.kinds) if teams is None else teams
        self.clock = clock

    def _changed(self, order: WorkOrder) -> WorkOrder:
        """Persist and announce; an open order another copy made first for the same alert is returned instead,
        unannounced (that copy announced it)."""
        stored = self.store.save(order)
        if stored is order:
            self.notify(order)
        return stored

    def on_alert(self, alert: Alert) -> None:
        """Alert listener: a new alert of a chosen code becomes an order for its team by itself."""
        new = alert.state == "open" and alert.occurrences == 1 and len(alert.notes) == 1
        if new and (alert.kind, alert.code) in self.auto_orders and self.store.for_alert(alert.id) is None:
            self.open(alert, None, "hub")

    def open(self, alert: Alert, team: str | None, by: str) -> WorkOrder:
        existing = self.store.for_alert(alert.id)
        if existing is not None and existing.state != "resolved":
            return existing
        team = team or self.teams.get(alert.kind, DEFAULT_TEAM)
        sla = self.sla.get(alert.severity.value) or Sla()
        return self._changed(create(alert, team, sla, by, self.clock()))

    def dispatch(self, order_id: str, assignee: str, by: str, note: str | None) -> WorkOrder | None:
        order = self.store.get(order_id)
        return None if order is None else self._changed(dispatch(order, assignee, by, note, self.clock()))

    def arrive(self, order_id: str, by: str, note: str | None) -> WorkOrder | None:
        order = self.store.get(order_id)
        return None if order is None else self._changed(arrive(order, by, note, self.clock()))

    def resolve(self, order_id: str, by: str, note: str | None) -> WorkOrder | None:
        """Close the order, and its alert with it if the alert is still active."""
        order = self.store.get(order_id)
        if order is None:
            return None
        done = self._changed(close(order, by, note, self.clock()))
        alert = self.engine.find(order.alert_id)
        if alert is not None and alert.active:
            self.engine.resolve(alert.id, by, note or f"work order {order.id} resolved")
        return done

    def check_overdue(self) -> int:
        """Escalate each deadline an open order has newly missed; returns how many orders."""
        now_ms = self.clock()
        count = 0
        for order in self.store.open():
            new = [d for d in order.missed(now_ms) if d not in order.escalated]
            if new:
                log.warning("work order %s (%s %s) overdue: %s", order.id, order.device, order.code, ", ".join(new))
                self._changed(escalate(order, new, now_ms))
                count += 1
        return count
