"""The dead-letter store: every rejected message, with why, kept for a person to look at.

Rows are buffered and written in one transaction per pipeline flush, so a flood
of bad messages costs one commit, not one per message, and never slows good ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.ingest.decode import Rejected
from hub.sqlite import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS rejected_reason ON rejected (reason, id);
"""

MAX_ROWS = 200_000
"""Oldest rows beyond this are dropped, so a misbehaving device cannot fill the disk."""


class DeadLetters:
    def __init__(self, path: Path, max_rows: int = MAX_ROWS) -> None:
        self.path = path
        self.max_rows = max_rows
        self._db = connect(path, SCHEMA)
        self._pending: list[Rejected] = []
        self._writes = 0

    def add(self, rejected: Rejected) -> None:
        self._pending.append(rejected)

    def flush(self) -> None:
        """Write what is pending in one transaction."""
        if not self._pending:
            return
        rows = [(r.received_ms, r.topic, r.kind, r.reason, r.detail, r.payload) for r in self._pending]
        self._pending = []
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO rejected (received_ms, topic, kind, reason, detail, payload) VALUES (?,?,?,?,?,?)", rows
            )
        self._writes += 1
        if self._writes % 100 == 0:
            self._db.execute(
                "DELETE FROM rejected WHERE id <= (SELECT max(id) FROM rejected) - ?", (self.max_rows,)
            )

    def recent(self, limit: int = 100, reason: str | None = None) -> list[dict[str, Any]]:
        """Newest rejected messages first; the payload as text where it is UTF-8."""
        sql = "SELECT id, received_ms, topic, kind, reason, detail, payload FROM rejected"
        args: tuple[Any, ...] = ()
        if reason:
            sql += " WHERE reason = ?"
            args = (reason,)
        sql += " ORDER BY id DESC LIMIT ?"
        out = []
        for row_id, received_ms, topic, kind, why, detail, payload in self._db.execute(sql, (*args, limit)):
            try:
                text, encoding = payload.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                text, encoding = payload.hex(), "hex"
            out.append({"id": row_id, "received": received_ms, "topic": topic, "kind": kind, "reason": why,
                        "detail": detail, "payload": text, "payload_encoding": encoding})
        return out

    def forget_before(self, before_ms: int) -> int:
        """Delete rejected messages received before `before_ms` (they may hold personal data)."""
        self.flush()
        return int(self._db.execute("DELETE FROM rejected WHERE received_ms < ?", (before_ms,)).rowcount)

    def close(self) -> None:
        self.flush()
        self._db.close()
