"""Incidents past the personal-data retention keep what happened and who worked it, not whom it concerned.

An incident's event parts carry their payloads: plates, access subjects, charger id tags, picture links (each
kind's `personal` fields). Once a part is older than `personal_retention_days` those fields are dropped from
it, as the stored events themselves are deleted (`Hub.forget_personal_data`). The incident stays: its timeline,
severity, alerts, work orders and the staff who worked it are the estate's operational record (alerts are kept
for reliability figures the same way), and none of that identifies a resident or a car. A forgotten part says
so (`forgotten: true` in its fields), so a reader knows the plate was there and is gone, not never known.
The incident's hash chain holds those fields only as salted digests (hub/incidents/chain.py): a forgotten part
still verifies there, and once an incident holds no personal value its salt is deleted in the same transaction,
so the digests can no longer be linked to a plate.

Only incidents that can still hold something to forget are read: a part is never older than its incident's
opening, and an incident whose latest part was older than the previous run's horizon was done then. That
horizon is kept beside the incidents (in their SQLite file), so a restart does not re-read every old one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from devices.base import DeviceKind
from hub.incidents.desk import IncidentDesk
from hub.incidents.merge import Incident, Part
from hub.incidents.store import dump, load

SCHEMA = """
CREATE TABLE IF NOT EXISTS incident_retention (
    what TEXT PRIMARY KEY,
    before_ms INTEGER NOT NULL
);
"""
HORIZON = "personal"
FORGOTTEN = "forgotten"
"""The field a part's payload gets once its personal fields are gone."""

Personal = Mapping[str, frozenset[str]]
"""kind -> its personal field names (`DeviceKind.personal`)."""


def personal_of(kinds: Mapping[str, DeviceKind]) -> dict[str, frozenset[str]]:
    """The personal fields of each kind that has some."""
    return {name: frozenset(kind.personal) for name, kind in kinds.items() if kind.personal}


def _forgotten_part(part: Part, before_ms: int, personal: Personal) -> Part:
    names = personal.get(part.kind)
    if part.source != "event" or part.at_ms >= before_ms or not names or names.isdisjoint(part.fields):
        return part
    kept = {k: v for k, v in part.fields.items() if k not in names}
    return replace(part, fields={**kept, FORGOTTEN: True})


def forgotten(incident: Incident, before_ms: int, personal: Personal) -> Incident:
    """The incident with the personal fields of its parts older than `before_ms` dropped; the same object when
    there was nothing to drop."""
    parts = tuple(_forgotten_part(p, before_ms, personal) for p in incident.parts)
    if all(new is old for new, old in zip(parts, incident.parts, strict=True)):
        return incident
    return replace(incident, parts=parts)


def holds_personal(incident: Incident, personal: Personal) -> bool:
    """Whether any of its parts still carries a personal field."""
    return any(not names.isdisjoint(p.fields) for p in incident.parts if (names := personal.get(p.kind)))


def forget_personal(desk: IncidentDesk, before_ms: int, personal: Personal,
                    unsalt: Callable[[Sequence[str]], None] = lambda ids: None) -> int:
    """Drop the personal fields older than `before_ms` from the stored incidents and the desk's active ones;
    returns how many incidents changed. Not announced: nothing a screen shows changes (viewers never saw the
    fields, and an incident this old is off the wall). `unsalt` gets, in the same transaction, the incidents
    that hold no personal value any more (`ChainStore.unsalt`: their chain's digests become unlinkable)."""
    db = desk.store._db
    db.executescript(SCHEMA)
    row = db.execute("SELECT before_ms FROM incident_retention WHERE what = ?", (HORIZON,)).fetchone()
    done_before = row[0] if row else 0
    rows = db.execute("SELECT body FROM incidents WHERE opened_ms < ? AND last_ms >= ?",
                      (before_ms, done_before)).fetchall()
    changed = [new for (body,) in rows if (new := forgotten(old := load(body), before_ms, personal)) is not old]
    db.execute("BEGIN")
    try:
        db.executemany("UPDATE incidents SET body = ? WHERE id = ?", [(dump(i), i.id) for i in changed])
        unsalt([i.id for i in changed if not holds_personal(i, personal)])
        db.execute("INSERT INTO incident_retention (what, before_ms) VALUES (?, ?) ON CONFLICT (what)"
                   " DO UPDATE SET before_ms = max(before_ms, excluded.before_ms)", (HORIZON, before_ms))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    for incident in changed:  # an incident still active this long: the desk's copy must not write them back
        current = desk.active.get(incident.id)
        if current is not None:
            desk.active[incident.id] = forgotten(current, before_ms, personal)
    return len(changed)
