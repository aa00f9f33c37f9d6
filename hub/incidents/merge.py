"""Merging alerts and events into incidents, as pure functions over immutable values.

A forced door is an access fault, two camera detections and a gate passage: four items for one thing a
person must look at. Items join when they share a place and come within a time window of the incident's
latest part. A device's places are its own name, its registered `place` and what it `sees`
(`hub.registry.Device`), so the registry says what belongs together and no kind is named here.
Only an alert opens an incident; an event joins one that is active at its place (or is pulled in when an
alert opens shortly after it), so a busy lane alone never makes incidents.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from devices.base import Severity
from hub.alerts.models import Alert, new_id
from hub.alerts.orders import WorkOrder
from hub.registry import Device
from hub.times import iso

IncidentState = Literal["open", "acknowledged", "resolved"]
Source = Literal["alert", "event"]
WORST = (Severity.CRITICAL, Severity.MAJOR, Severity.MINOR, Severity.INFO)
"""Severities, worst first."""
MAX_EVENTS = 200
"""Event parts one incident keeps; later ones are only counted (a lane keeps passing cars)."""
MACHINES = frozenset({"device", "hub", "rule"})
"""Who acted when no person did: not listed among the people who worked an incident."""


def places_of(device: Device | None, name: str) -> frozenset[str]:
    """Where a device is, and what it looks at: its own name, its registered place, and what it `sees`."""
    if device is None:
        return frozenset({name})
    return frozenset({device.device, *([device.place] if device.place else ()), *device.sees})


def rank(severity: Severity) -> int:
    """0 for the worst severity: StrEnum members compare as text, which says nothing about how bad."""
    return WORST.index(severity)


def worst(severities: Iterable[Severity]) -> Severity:
    given = set(severities)
    return next((s for s in WORST if s in given), Severity.INFO)


@dataclass(frozen=True, slots=True)
class Part:
    """One alert or event of an incident; `fields` holds an event's payload (personal fields included: the
    API masks them by the kind's list)."""

    source: Source
    ref: str
    site: str
    kind: str
    device: str
    at_ms: int
    severity: Severity
    title: str
    places: frozenset[str]
    title_en: str = ""
    state: str | None = None
    """An alert part's state (open, acknowledged, resolved); None for an event."""
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "ref": self.ref, "site": self.site, "kind": self.kind, "device": self.device,
                "at": iso(self.at_ms), "severity": self.severity.value, "title": self.title,
                "places": sorted(self.places), "state": self.state, "fields": self.fields}


@dataclass(frozen=True, slots=True)
class Entry:
    """A line of the timeline: what happened to the incident, when, by whom, and which part it concerns."""

    at_ms: int
    by: str
    action: str
    ref: str
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    site: str
    opened_ms: int
    last_ms: int
    title: str
    title_en: str
    parts: tuple[Part, ...]
    timeline: tuple[Entry, ...]
    places: frozenset[str]
    people: tuple[str, ...] = ()
    orders: tuple[str, ...] = ()
    more_events: int = 0
    """Events at its place beyond MAX_EVENTS, counted but not kept."""
    anchor_ms: int = 0
    """Its latest alert or action: the window is measured from here, so a busy lane's passages joining it do not
    keep an incident taking events for ever."""

    @property
    def severity(self) -> Severity:
        return worst(p.severity for p in self.parts)

    @property
    def state(self) -> IncidentState:
        """Resolved once every alert is; acknowledged once none is still open."""
        states = {p.state for p in self.parts if p.source == "alert"}
        if states <= {"resolved"}:
            return "resolved"
        return "open" if "open" in states else "acknowledged"

    @property
    def active(self) -> bool:
        return self.state != "resolved"

    @property
    def alerts(self) -> tuple[str, ...]:
        return tuple(p.ref for p in self.parts if p.source == "alert")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "site": self.site, "state": self.state, "severity": self.severity.value,
            "title": self.title, "title_en": self.title_en, "opened_at": iso(self.opened_ms),
            "last_at": iso(self.last_ms), "places": sorted(self.places), "people": list(self.people),
            "orders": list(self.orders), "alerts": list(self.alerts),
            "events": [p.ref for p in self.parts if p.source == "event"], "more_events": self.more_events,
            "parts": [p.to_json() for p in self.parts],
            "timeline": [{"at": iso(e.at_ms), "by": e.by, "action": e.action, "ref": e.ref, "text": e.text}
                         for e in self.timeline],
        }


def alert_part(alert: Alert, places: frozenset[str]) -> Part:
    return Part("alert", alert.id, alert.site, alert.kind, alert.device, alert.opened_ms, alert.severity,
                alert.title, places, alert.title_en, alert.state)


def event_part(site: str, kind: str, device: str, ref: str, at_ms: int, title: str, places: frozenset[str],
               fields: dict[str, Any]) -> Part:
    """An event: no severity of its own (info), so it never makes an incident look worse than its alerts."""
    return Part("event", ref, site, kind, device, at_ms, Severity.INFO, title, places, title, None, fields)


def fits(incident: Incident, part: Part, window_ms: int) -> bool:
    """Same site, a shared place, and within the window of the incident's time span."""
    return (incident.active and incident.site == part.site and not incident.places.isdisjoint(part.places)
            and incident.opened_ms - window_ms <= part.at_ms <= max(incident.anchor_ms, incident.opened_ms) + window_ms)


def _at(entry: Entry) -> int:
    return entry.at_ms


def _added(incident: Incident, part: Part) -> Incident:
    if part.source == "event" and len(incident.parts) - len(incident.alerts) >= MAX_EVENTS:
        return replace(incident, more_events=incident.more_events + 1, last_ms=max(incident.last_ms, part.at_ms))
    by = "device" if part.source == "event" else "hub"
    entry = Entry(part.at_ms, by, "alert" if part.source == "alert" else "event", part.ref,
                  f"{part.device}: {part.title}")
    timeline = list(incident.timeline)
    bisect.insort_right(timeline, entry, key=_at)  # in time order; a late-arriving event goes in its place
    if part.source == "alert" and (not incident.title or rank(part.severity) < rank(incident.severity)):
        incident = replace(incident, title=part.title, title_en=part.title_en)  # titled after its worst alert
    anchor_ms = max(incident.anchor_ms, part.at_ms) if part.source == "alert" else incident.anchor_ms
    return replace(incident, parts=(*incident.parts, part), timeline=tuple(timeline),
                   places=incident.places | part.places, last_ms=max(incident.last_ms, part.at_ms),
                   opened_ms=min(incident.opened_ms, part.at_ms), anchor_ms=anchor_ms)


def place(incidents: Iterable[Incident], part: Part, window_ms: int,
          recent: Iterable[Part] = ()) -> Incident | None:
    """The incident `part` makes: the matching active one (the latest) with it added, or for an alert with
    none to join a new one, with the `recent` events at its places pulled in. None: an event with nowhere to go.

    An alert already in an incident (a later version of it) is for `with_alert`, not here."""
    matching = [i for i in incidents if fits(i, part, window_ms)]
    if matching:
        return _added(max(matching, key=lambda i: i.last_ms), part)
    if part.source != "alert":
        return None
    incident = Incident(new_id(part.at_ms), part.site, part.at_ms, part.at_ms, "", "", (), (), part.places)
    incident = _added(incident, part)
    for event in sorted(recent, key=lambda p: p.at_ms):
        if event.source == "event" and fits(incident, event, window_ms) and event.at_ms <= part.at_ms:
            incident = _added(incident, event)
    return incident


def person(people: tuple[str, ...], by: str | None) -> tuple[str, ...]:
    """`people` with `by` added last, unless it is a machine or listed already."""
    return people if by is None or by in MACHINES or by in people else (*people, by)


def with_alert(incident: Incident, alert: Alert) -> Incident:
    """A new version of one of its alerts: its state, and the alert's newest note on the timeline."""
    note = alert.notes[-1] if alert.notes else None
    parts = tuple(replace(p, state=alert.state) if p.ref == alert.id else p for p in incident.parts)
    changed = replace(incident, parts=parts)
    if note is not None and note.action != "opened":
        entry = Entry(note.at_ms, note.by, f"alert {note.action}", alert.id, note.text)
        changed = replace(changed, timeline=(*changed.timeline, entry), people=person(changed.people, note.by),
                          last_ms=max(changed.last_ms, note.at_ms), anchor_ms=max(changed.anchor_ms, note.at_ms))
    return changed


def with_order(incident: Incident, order: WorkOrder) -> Incident:
    """A new version of the work order of one of its alerts: listed, its newest note on the timeline, and its
    assignee among the people."""
    note = order.notes[-1] if order.notes else None
    orders = incident.orders if order.id in incident.orders else (*incident.orders, order.id)
    people = person(person(incident.people, order.assignee), note.by if note else None)
    changed = replace(incident, orders=orders, people=people)
    if note is not None:
        entry = Entry(note.at_ms, note.by, f"order {note.action}", order.id, note.text)
        changed = replace(changed, timeline=(*changed.timeline, entry), last_ms=max(changed.last_ms, note.at_ms),
                          anchor_ms=max(changed.anchor_ms, note.at_ms))
    return changed
