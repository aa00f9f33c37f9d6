"""Alerts on disk (SQLite), so none is lost or reopened across a restart."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from devices.base import Severity
from hub.alerts.models import Alert, Note
from hub.sqlite import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL, kind TEXT NOT NULL, device TEXT NOT NULL, code TEXT NOT NULL,
    severity TEXT NOT NULL, state TEXT NOT NULL, opened_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state, opened_ms);
CREATE INDEX IF NOT EXISTS alerts_device ON alerts (site, kind, device, opened_ms);
"""


def _dump(alert: Alert) -> str:
    return orjson.dumps(asdict(alert)).decode()


def _load(body: str) -> Alert:
    data = orjson.loads(body)
    data["severity"] = Severity(data["severity"])
    data["notes"] = tuple(Note(**n) for n in data["notes"])
    return Alert(**data)


class AlertStore:
    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA)

    def save(self, alert: Alert) -> None:
        self._db.execute(
            "INSERT INTO alerts (id, site, kind, device, code, severity, state, opened_ms, body)"
            " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET state = excluded.state, body = excluded.body",
            (alert.id, alert.site, alert.kind, alert.device, alert.code, alert.severity.value, alert.state,
             alert.opened_ms, _dump(alert)),
        )

    def active(self) -> list[Alert]:
        return [_load(b) for (b,) in self._db.execute("SELECT body FROM alerts WHERE state != 'resolved'")]

    def get(self, alert_id: str) -> Alert | None:
        row = self._db.execute("SELECT body FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return _load(row[0]) if row else None

    def find(self, limit: int = 200, **where: Any) -> list[Alert]:
        """Newest first; `where` holds column equalities (site, kind, device, state, severity)."""
        sql = "SELECT body FROM alerts"
        pairs = [(k, v) for k, v in where.items() if v is not None]
        if pairs:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k, _ in pairs)
        sql += " ORDER BY opened_ms DESC LIMIT ?"
        return [_load(b) for (b,) in self._db.execute(sql, (*(v for _, v in pairs), limit))]

    def close(self) -> None:
        self._db.close()
