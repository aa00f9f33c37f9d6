"""Incidents on disk, in the alerts' SQLite file, so a restart neither loses nor splits one."""

from __future__ import annotations

from typing import Any

import orjson

from devices.base import Severity
from hub.alerts.store import SITE_OR_HUB, AlertStore
from hub.incidents.merge import Entry, Incident, Part

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL, state TEXT NOT NULL, severity TEXT NOT NULL,
    opened_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_state ON incidents (state, opened_ms);
CREATE INDEX IF NOT EXISTS incidents_opened ON incidents (opened_ms);
CREATE TABLE IF NOT EXISTS incident_refs (
    ref TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL
);
"""
"""`incident_refs`: alert and work-order ids -> their incident, so a late change finds it without a scan."""


def _plain(value: Part | Entry) -> dict[str, Any]:
    """A part or entry as plain data, by hand: `dataclasses.asdict` deep-copies and costs ten times as much."""
    out = {name: getattr(value, name) for name in value.__slots__}  # type: ignore[attr-defined]
    if isinstance(value, Part):
        out["places"] = sorted(value.places)
    return out


def dump(incident: Incident) -> str:
    data = {name: getattr(incident, name) for name in incident.__slots__}  # type: ignore[attr-defined]
    data.update(places=sorted(incident.places), parts=[_plain(p) for p in incident.parts],
                timeline=[_plain(e) for e in incident.timeline])
    return orjson.dumps(data).decode()


def load(body: str) -> Incident:
    data = orjson.loads(body)
    data["places"] = frozenset(data["places"])
    data["parts"] = tuple(Part(**{**p, "severity": Severity(p["severity"]), "places": frozenset(p["places"])})
                          for p in data["parts"])
    data["timeline"] = tuple(Entry(**e) for e in data["timeline"])
    data["people"] = tuple(data["people"])
    data["orders"] = tuple(data["orders"])
    return Incident(**data)


class IncidentStore:
    def __init__(self, alerts: AlertStore) -> None:
        self._db = alerts._db
        self._db.executescript(SCHEMA)

    def save(self, incident: Incident) -> None:
        refs = [(ref, incident.id) for ref in (*incident.alerts, *incident.orders)]
        self._db.execute("BEGIN")
        try:
            self._db.execute(
                "INSERT INTO incidents (id, site, state, severity, opened_ms, last_ms, body) VALUES (?,?,?,?,?,?,?)"
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state, severity = excluded.severity,"
                " opened_ms = excluded.opened_ms, last_ms = excluded.last_ms, body = excluded.body",
                (incident.id, incident.site, incident.state, incident.severity.value, incident.opened_ms,
                 incident.last_ms, dump(incident)))
            self._db.executemany("INSERT OR REPLACE INTO incident_refs (ref, incident_id) VALUES (?,?)", refs)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def get(self, incident_id: str) -> Incident | None:
        row = self._db.execute("SELECT body FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        return load(row[0]) if row else None

    def of(self, ref: str) -> Incident | None:
        """The incident an alert or work order is part of."""
        row = self._db.execute("SELECT i.body FROM incident_refs r JOIN incidents i ON i.id = r.incident_id"
                               " WHERE r.ref = ?", (ref,)).fetchone()
        return load(row[0]) if row else None

    def active(self) -> list[Incident]:
        return [load(b) for (b,) in self._db.execute("SELECT body FROM incidents WHERE state != 'resolved'")]

    def find(self, limit: int = 200, site: str | None = None, state: str | None = None,
             since_ms: int | None = None) -> list[Incident]:
        """Newest first; a site includes the hub's own (site `*`), as for alerts."""
        sql = "SELECT body FROM incidents WHERE last_ms >= ?"
        args: list[Any] = [since_ms or 0]
        if site is not None:
            sql += f" AND {SITE_OR_HUB}"
            args.append(site)
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        sql += " ORDER BY opened_ms DESC LIMIT ?"
        return [load(b) for (b,) in self._db.execute(sql, (*args, limit))]
