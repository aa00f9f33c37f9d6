"""Alerts on disk (SQLite), so none is lost or reopened across a restart."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from devices.base import Severity
from hub.alerts.models import HUB_SITE, Alert, Note
from hub.alerts.orders import WorkOrder
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
CREATE INDEX IF NOT EXISTS alerts_opened ON alerts (opened_ms, severity);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL, site TEXT NOT NULL, team TEXT NOT NULL, state TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_state ON orders (state, created_ms);
CREATE INDEX IF NOT EXISTS orders_alert ON orders (alert_id);
"""


SITE_OR_HUB = f"site IN (?, '{HUB_SITE}')"
"""A site's alerts include the hub's own: they concern every site (see HUB_SITE)."""


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

    def active_codes(self, site: str | None = None) -> dict[tuple[str, str, str], set[str]]:
        """(site, kind, device) -> codes of its open and acknowledged alerts, from their columns."""
        sql = "SELECT site, kind, device, code FROM alerts WHERE state IN ('open', 'acknowledged')"
        args: tuple[str, ...] = ()
        if site is not None:
            sql += " AND site = ?"
            args = (site,)
        out: dict[tuple[str, str, str], set[str]] = {}
        for at_site, kind, device, code in self._db.execute(sql, args):
            out.setdefault((at_site, kind, device), set()).add(code)
        return out

    def count_active(self, site: str | None = None) -> dict[tuple[str, str], int]:
        """(state, severity) -> how many open and acknowledged alerts; counted in SQL, no alert loaded."""
        sql = "SELECT state, severity, count(*) FROM alerts WHERE state IN ('open', 'acknowledged')"
        args: tuple[str, ...] = ()
        if site is not None:
            sql += f" AND {SITE_OR_HUB}"
            args = (site,)
        return {(state, severity): n for state, severity, n in self._db.execute(sql + " GROUP BY 1, 2", args)}

    def opened_since(self, since_ms: int, site: str | None = None) -> list[tuple[int, str]]:
        """(opened ms, severity) of the alerts opened since then, from their columns: no alert is loaded."""
        sql = "SELECT opened_ms, severity FROM alerts WHERE opened_ms >= ?"
        args: tuple[Any, ...] = (since_ms,)
        if site is not None:
            sql += f" AND {SITE_OR_HUB}"
            args += (site,)
        return self._db.execute(sql, args).fetchall()

    def get(self, alert_id: str) -> Alert | None:
        row = self._db.execute("SELECT body FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return _load(row[0]) if row else None

    def find(self, limit: int = 200, **where: Any) -> list[Alert]:
        """Newest first; `where` holds column equalities (site, kind, device, state, severity); a site
        includes the hub's own alerts."""
        sql = "SELECT body FROM alerts"
        pairs = [(k, v) for k, v in where.items() if v is not None]
        if pairs:
            sql += " WHERE " + " AND ".join(SITE_OR_HUB if k == "site" else f"{k} = ?" for k, _ in pairs)
        sql += " ORDER BY opened_ms DESC LIMIT ?"
        return [_load(b) for (b,) in self._db.execute(sql, (*(v for _, v in pairs), limit))]

    def close(self) -> None:
        self._db.close()


def _load_order(body: str) -> WorkOrder:
    data = orjson.loads(body)
    data["notes"] = tuple(Note(**n) for n in data["notes"])
    data["escalated"] = tuple(data["escalated"])
    return WorkOrder(**data)


class OrderStore:
    """Work orders, in the same file as the alerts they came from."""

    def __init__(self, alerts: AlertStore) -> None:
        self._db = alerts._db

    def save(self, order: WorkOrder) -> None:
        self._db.execute(
            "INSERT INTO orders (id, alert_id, site, team, state, created_ms, body) VALUES (?,?,?,?,?,?,?)"
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state, body = excluded.body",
            (order.id, order.alert_id, order.site, order.team, order.state, order.created_ms,
             orjson.dumps(asdict(order)).decode()),
        )

    def get(self, order_id: str) -> WorkOrder | None:
        row = self._db.execute("SELECT body FROM orders WHERE id = ?", (order_id,)).fetchone()
        return _load_order(row[0]) if row else None

    def for_alert(self, alert_id: str) -> WorkOrder | None:
        row = self._db.execute("SELECT body FROM orders WHERE alert_id = ? ORDER BY created_ms DESC LIMIT 1",
                               (alert_id,)).fetchone()
        return _load_order(row[0]) if row else None

    def open(self) -> list[WorkOrder]:
        return [_load_order(b) for (b,) in self._db.execute("SELECT body FROM orders WHERE state != 'resolved'")]

    def find(self, limit: int = 500, since_ms: int | None = None, **where: Any) -> list[WorkOrder]:
        pairs = [(k, v) for k, v in where.items() if v is not None]
        sql = "SELECT body FROM orders WHERE created_ms >= ?" + "".join(f" AND {k} = ?" for k, _ in pairs)
        sql += " ORDER BY created_ms DESC LIMIT ?"
        rows = self._db.execute(sql, (since_ms or 0, *(v for _, v in pairs), limit))
        return [_load_order(b) for (b,) in rows]
