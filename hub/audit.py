"""The audit log: who did what to which device, alert, order or user, when, and how it ended.

In `audit.db`, or in the shared PostgreSQL database (`hub.statedb`), where every hub copy and the CLI
append to one log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from hub.statedb import open_state
from hub.times import iso

MIGRATIONS = ("""
CREATE TABLE IF NOT EXISTS audit (
    id {id},
    at_ms {int} NOT NULL,
    "user" TEXT NOT NULL, role TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ms);
""",)
"""Schema steps (`hub.statedb`); `"user"` is quoted because PostgreSQL reserves the word."""


class AuditLog:
    def __init__(self, path: Path, database_url: str | None = None) -> None:
        self.state = open_state(database_url, path)
        self.state.migrate("audit", MIGRATIONS)

    def record(self, user: str, role: str, action: str, target: str, outcome: str,
               detail: dict[str, Any] | None = None) -> None:
        self.state.execute(
            'INSERT INTO audit (at_ms, "user", role, action, target, outcome, detail) VALUES (?,?,?,?,?,?,?)',
            (int(time.time() * 1000), user, role, action, target, outcome, orjson.dumps(detail or {}).decode()))

    def recent(self, limit: int = 200, action: str | None = None) -> list[dict[str, Any]]:
        sql = 'SELECT at_ms, "user", role, action, target, outcome, detail FROM audit'
        args: tuple[Any, ...] = ()
        if action:
            sql += " WHERE action = ?"
            args = (action,)
        rows = self.state.query(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
        return [{"at": iso(at), "user": u, "role": r, "action": a, "target": t, "outcome": o,
                 "detail": orjson.loads(d)} for at, u, r, a, t, o, d in rows]

    def close(self) -> None:
        self.state.close()
