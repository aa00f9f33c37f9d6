"""The incident desk: hears alerts, work orders and events, keeps incidents (via `merge`) and announces them.

Thin and stateful: the decisions are `hub.incidents.merge`'s. Active incidents live in memory (and on disk);
the last events are kept a window long, so a detection that came just before the door's fault still joins.
On the message hot path an event costs a registry lookup and an append unless an incident is active at its site.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from devices.base import Accepted
from hub.alerts.engine import wall_clock_ms
from hub.alerts.models import Alert
from hub.alerts.orders import WorkOrder
from hub.incidents.merge import Incident, Part, alert_part, event_part, fits, place, places_of, with_alert, with_order
from hub.incidents.store import IncidentStore
from hub.registry import Registry
from hub.state import DeviceState

RECENT_MAX = 1_000
"""Events remembered for an alert that may follow them (older than the window they are useless anyway)."""


class IncidentDesk:
    def __init__(self, store: IncidentStore, registry: Registry, notify: Callable[[Incident], None],
                 window_s: float = 300.0, clock: Callable[[], int] = wall_clock_ms) -> None:
        self.store = store
        self.registry = registry
        self.notify = notify
        self.window_ms = int(window_s * 1000)
        self.clock = clock
        self.active: dict[str, Incident] = {i.id: i for i in store.active()}
        self._by_alert = {ref: i.id for i in self.active.values() for ref in i.alerts}
        self._recent: deque[tuple[Accepted, frozenset[str]]] = deque(maxlen=RECENT_MAX)

    def _changed(self, incident: Incident) -> Incident:
        self.store.save(incident)
        if incident.active:
            self.active[incident.id] = incident
            self._by_alert.update((ref, incident.id) for ref in incident.alerts)
        else:
            self.active.pop(incident.id, None)
            for ref in incident.alerts:
                self._by_alert.pop(ref, None)
        self.notify(incident)
        return incident

    def _places(self, site: str, kind: str, device: str) -> frozenset[str]:
        return places_of(self.registry.get((site, kind, device)), device)

    def _incident_of(self, ref: str) -> Incident | None:
        incident_id = self._by_alert.get(ref)
        return self.active[incident_id] if incident_id is not None else self.store.of(ref)

    def get(self, incident_id: str) -> Incident | None:
        """An incident by id: an active one from memory, an older one from the store."""
        return self.active.get(incident_id) or self.store.get(incident_id)

    def amend(self, incident: Incident) -> Incident:
        """A new version made outside the merge (worked as a whole: `hub.incidents.work`): kept and announced."""
        return self._changed(incident)

    def on_alert(self, alert: Alert) -> None:
        """Alert listener: a later version updates its incident; a new alert joins one or opens one."""
        current = self._incident_of(alert.id)
        if current is not None:
            self._changed(with_alert(current, alert))
            return
        if not alert.active:  # resolved before we knew it (older than this desk): nothing to look at
            return
        recent = [_part(msg, places) for msg, places in self._recent if msg.site == alert.site]
        made = place(self.active.values(), alert_part(alert, self._places(alert.site, alert.kind, alert.device)),
                     self.window_ms, recent)
        if made is not None:
            self._changed(with_alert(made, alert) if alert.state != "open" else made)

    def on_order(self, order: WorkOrder) -> None:
        """Order listener: the order of one of its alerts goes on the incident."""
        current = self._incident_of(order.alert_id)
        if current is not None:
            self._changed(with_order(current, order))

    def on_message(self, msg: Accepted, state: DeviceState) -> None:
        """Pipeline listener: an event (not a fault: faults come as alerts) joins the incident at its place."""
        if msg.channel != "event" or msg.payload.type == "fault":  # type: ignore[attr-defined]
            return
        places = self._places(msg.site, msg.kind, msg.device)
        self._recent.append((msg, places))
        if not self.active:
            return
        site = msg.site
        if not any(i.site == site and not i.places.isdisjoint(places) for i in self.active.values()):
            return  # the common case, decided before the payload is copied
        part = _part(msg, places)
        if any(fits(i, part, self.window_ms) for i in self.active.values()):
            made = place(self.active.values(), part, self.window_ms)
            if made is not None:
                self._changed(made)

    def prune(self) -> None:
        """Forget remembered events older than the window (called now and then; the deque is bounded anyway)."""
        horizon = self.clock() - self.window_ms
        while self._recent and self._recent[0][0].time_ms < horizon:
            self._recent.popleft()


def _part(msg: Accepted, places: frozenset[str]) -> Part:
    payload = msg.payload
    fields = payload.model_dump(mode="json", exclude_none=True)
    ref = fields.get("id") or f"{msg.device}@{msg.time_ms}"
    return event_part(msg.site, msg.kind, msg.device, ref, msg.time_ms, fields.get("type", "event"), places, fields)
