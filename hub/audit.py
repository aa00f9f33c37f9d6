"""The audit log: who did what to which device, alert, order or user, when, and how it ended."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from hub.sqlite import connect
from hub.times import iso

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    user TEXT NOT NULL, role TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ms);
"""


class AuditLog:
    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA)

    def record(self, user: str, role: str, action: str, target: str, outcome: str,
               detail: dict[str, Any] | None = None) -> None:
        self._db.execute(
            "INSERT INTO audit (at_ms, user, role, action, target, outcome, detail) VALUES (?,?,?,?,?,?,?)",
            (int(time.time() * 1000), user, role, action, target, outcome, orjson.dumps(detail or {}).decode()))

    def recent(self, limit: int = 200, action: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT at_ms, user, role, action, target, outcome, detail FROM audit"
        args: tuple[Any, ...] = ()
        if action:
            sql += " WHERE action = ?"
            args = (action,)
        rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
        return [{"at": iso(at), "user": u, "role": r, "action": a, "target": t, "outcome": o,
                 "detail": orjson.loads(d)} for at, u, r, a, t, o, d in rows]

    def close(self) -> None:
        self._db.close()
