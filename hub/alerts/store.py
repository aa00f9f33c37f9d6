"""Alerts and work orders on disk (SQLite, or the shared PostgreSQL: `hub.statedb`), so none is lost or
reopened across a restart, and one fault opens one alert however many hub copies see it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from devices.base import Severity
from hub.alerts.models import HUB_SITE, Alert, Note
from hub.alerts.orders import WorkOrder
from hub.statedb import Conflict, StateDb, open_state

MIGRATIONS = (
    """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL, kind TEXT NOT NULL, device TEXT NOT NULL, code TEXT NOT NULL,
    severity TEXT NOT NULL, state TEXT NOT NULL, opened_ms {int} NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state, opened_ms);
CREATE INDEX IF NOT EXISTS alerts_device ON alerts (site, kind, device, opened_ms);
CREATE INDEX IF NOT EXISTS alerts_opened ON alerts (opened_ms, severity);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL, site TEXT NOT NULL, team TEXT NOT NULL, state TEXT NOT NULL,
    created_ms {int} NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_state ON orders (state, created_ms);
CREATE INDEX IF NOT EXISTS orders_alert ON orders (alert_id);
""",
    """
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active ON alerts (site, kind, device, code) WHERE state != 'resolved';
CREATE UNIQUE INDEX IF NOT EXISTS orders_one_open ON orders (alert_id) WHERE state != 'resolved';
""",
)
"""Schema steps (`hub.statedb`); the first is the schema of the SQLite-only versions. The second is the
backstop of "once across copies": one active alert per device and code, one open order per alert, whatever
the copies' memories say (the engine and the desk keep the same rule in one process already)."""


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
    def __init__(self, path: Path, database_url: str | None = None) -> None:
        self.state: StateDb = open_state(database_url, path)
        self.state.migrate("alerts", MIGRATIONS)
        connection = getattr(self.state, "connection", None)
        if connection is not None:
            self._db = connection
            """SQLite only: the file's connection, for the incidents that share it (not on the seam yet)."""

    def save(self, alert: Alert) -> Alert:
        """Store a new alert or a new version of one; returns what is stored. A new alert whose device and
        code already have an active one (another copy opened it first) is not stored: that one is returned."""
        try:
            self.state.execute(
                "INSERT INTO alerts (id, site, kind, device, code, severity, state, opened_ms, body)"
                " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
                " body = excluded.body",
                (alert.id, alert.site, alert.kind, alert.device, alert.code, alert.severity.value, alert.state,
                 alert.opened_ms, _dump(alert)),
            )
        except Conflict:
            row = self.state.one("SELECT body FROM alerts WHERE site = ? AND kind = ? AND device = ? AND code = ?"
                                 " AND state != 'resolved'", (alert.site, alert.kind, alert.device, alert.code))
            if row is None:  # resolved in between: this one may open now
                return self.save(alert)
            return _load(row[0])
        return alert

    def active(self) -> list[Alert]:
        return [_load(b) for (b,) in self.state.query("SELECT body FROM alerts WHERE state != 'resolved'")]

    def active_codes(self, site: str | None = None) -> dict[tuple[str, str, str], set[str]]:
        """(site, kind, device) -> codes of its open and acknowledged alerts, from their columns."""
        sql = "SELECT site, kind, device, code FROM alerts WHERE state IN ('open', 'acknowledged')"
        args: tuple[str, ...] = ()
        if site is not None:
            sql += " AND site = ?"
            args = (site,)
        out: dict[tuple[str, str, str], set[str]] = {}
        for at_site, kind, device, code in self.state.query(sql, args):
            out.setdefault((at_site, kind, device), set()).add(code)
        return out

    def count_active(self, site: str | None = None) -> dict[tuple[str, str], int]:
        """(state, severity) -> how many open and acknowledged alerts; counted in SQL, no alert loaded."""
        sql = "SELECT state, severity, count(*) FROM alerts WHERE state IN ('open', 'acknowledged')"
        args: tuple[str, ...] = ()
        if site is not None:
            sql += f" AND {SITE_OR_HUB}"
            args = (site,)
        return {(state, severity): n for state, severity, n in self.state.query(sql + " GROUP BY 1, 2", args)}

    def opened_since(self, since_ms: int, site: str | None = None) -> list[tuple[int, str]]:
        """(opened ms, severity) of the alerts opened since then, from their columns: no alert is loaded."""
        sql = "SELECT opened_ms, severity FROM alerts WHERE opened_ms >= ?"
        args: tuple[Any, ...] = (since_ms,)
        if site is not None:
            sql += f" AND {SITE_OR_HUB}"
            args += (site,)
        return self.state.query(sql, args)  # type: ignore[return-value]

    def get(self, alert_id: str) -> Alert | None:
        row = self.state.one("SELECT body FROM alerts WHERE id = ?", (alert_id,))
        return _load(row[0]) if row else None

    def find(self, limit: int = 200, **where: Any) -> list[Alert]:
        """Newest first; `where` holds column equalities (site, kind, device, state, severity); a site
        includes the hub's own alerts."""
        sql = "SELECT body FROM alerts"
        pairs = [(k, v) for k, v in where.items() if v is not None]
        if pairs:
            sql += " WHERE " + " AND ".join(SITE_OR_HUB if k == "site" else f"{k} = ?" for k, _ in pairs)
        sql += " ORDER BY opened_ms DESC LIMIT ?"
        return [_load(b) for (b,) in self.state.query(sql, (*(v for _, v in pairs), limit))]

    def close(self) -> None:
        self.state.close()


def _load_order(body: str) -> WorkOrder:
    data = orjson.loads(body)
    data["notes"] = tuple(Note(**n) for n in data["notes"])
    data["escalated"] = tuple(data["escalated"])
    return WorkOrder(**data)


class OrderStore:
    """Work orders, in the same database as the alerts they came from."""

    def __init__(self, alerts: AlertStore) -> None:
        self.state = alerts.state

    def save(self, order: WorkOrder) -> WorkOrder:
        """Store a new order or a new version of one; returns what is stored. A new order for an alert that
        already has an open one (another copy made it first) is not stored: that one is returned."""
        try:
            self.state.execute(
                "INSERT INTO orders (id, alert_id, site, team, state, created_ms, body) VALUES (?,?,?,?,?,?,?)"
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state, body = excluded.body",
                (order.id, order.alert_id, order.site, order.team, order.state, order.created_ms,
                 orjson.dumps(asdict(order)).decode()),
            )
        except Conflict:
            row = self.state.one("SELECT body FROM orders WHERE alert_id = ? AND state != 'resolved'",
                                 (order.alert_id,))
            if row is None:  # closed in between: this one may open now
                return self.save(order)
            return _load_order(row[0])
        return order

    def get(self, order_id: str) -> WorkOrder | None:
        row = self.state.one("SELECT body FROM orders WHERE id = ?", (order_id,))
        return _load_order(row[0]) if row else None

    def for_alert(self, alert_id: str) -> WorkOrder | None:
        row = self.state.one("SELECT body FROM orders WHERE alert_id = ? ORDER BY created_ms DESC LIMIT 1",
                             (alert_id,))
        return _load_order(row[0]) if row else None

    def open(self) -> list[WorkOrder]:
        return [_load_order(b) for (b,) in self.state.query("SELECT body FROM orders WHERE state != 'resolved'")]

    def find(self, limit: int = 500, since_ms: int | None = None, **where: Any) -> list[WorkOrder]:
        pairs = [(k, v) for k, v in where.items() if v is not None]
        sql = "SELECT body FROM orders WHERE created_ms >= ?" + "".join(f" AND {k} = ?" for k, _ in pairs)
        sql += " ORDER BY created_ms DESC LIMIT ?"
        rows = self.state.query(sql, (since_ms or 0, *(v for _, v in pairs), limit))
        return [_load_order(b) for (b,) in rows]
