"""The dead-letter store: every rejected message, with why, kept for a person to look at.

Rows are buffered and written in one transaction per pipeline flush, so a flood
of bad messages costs one commit, not one per message, and never slows good ones.
The store is capped in rows and in bytes: past either cap the oldest rows go
first, each one counted (`dropped`), so a misbehaving device cannot fill the disk
and the loss is visible in `/metrics`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from hub.events import PointsRejected
from hub.ingest.decode import Rejected
from hub.sqlite import connect

_LINE_HEAD = re.compile(rb"((?:[^\\, \n]|\\.)+)((?:,(?:[^\\ \n]|\\.)*)?)")
"""A line's measurement and its `,tag=value` run (escapes kept), as `lineproto` writes them."""


def refused_kind(body: bytes) -> str:
    """The device kind of the first point in a body the store refused (line protocol or points JSON), so a
    store's refusal is found under its kind like every other dead letter; '' when it cannot be told."""
    from devices import REGISTRY

    try:
        if body.startswith(b"["):
            row = orjson.loads(body)[0]
            measurement, tags = str(row[0]), dict(row[1])
        else:
            head = _LINE_HEAD.match(body)
            if head is None:
                return ""
            measurement = head.group(1).decode("utf-8", "replace")
            tags = dict(pair.split(b"=", 1) for pair in head.group(2).split(b",")[1:] if b"=" in pair)
            tags = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in tags.items()}
    except (ValueError, TypeError, IndexError, KeyError):
        return ""
    kind = tags.get("kind", "") if measurement == "device_state" else measurement.removesuffix("_event")
    return kind if kind in REGISTRY else ""


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
CREATE INDEX IF NOT EXISTS rejected_kind ON rejected (kind, id);
CREATE INDEX IF NOT EXISTS rejected_time ON rejected (received_ms);
"""
"""The indexes serve the filters of `GET /api/deadletters` (newest first, by id) and `forget_before`."""

MAX_ROWS = 200_000
"""Oldest rows beyond this are dropped, so a misbehaving device cannot fill the disk."""
MAX_BYTES_DEFAULT = 256 * 2**20
ROW_OVERHEAD_BYTES = 40
"""Counted per row beside its text and payload: the id, the time and SQLite's record header, roughly."""
ROW_BYTES = ("length(payload) + length(CAST(topic AS BLOB)) + length(CAST(kind AS BLOB)) + "
             f"length(CAST(reason AS BLOB)) + length(CAST(detail AS BLOB)) + {ROW_OVERHEAD_BYTES}")
"""A row's size in SQL, as `_row_bytes` counts it in Python (text as UTF-8)."""


def _row_bytes(row: tuple[int, str, str, str, str, bytes]) -> int:
    _, topic, kind, reason, detail, payload = row
    return (len(payload) + len(topic.encode()) + len(kind.encode()) + len(reason.encode()) + len(detail.encode())
            + ROW_OVERHEAD_BYTES)


@dataclass(frozen=True, slots=True)
class Filter:
    """What `GET /api/deadletters` asks for; times in epoch ms, bounds inclusive; `before` an id (the cursor)."""

    reason: str | None = None
    kind: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    before: int | None = None

    def where(self) -> tuple[str, tuple[Any, ...]]:
        clauses = (("reason = ?", self.reason), ("kind = ?", self.kind), ("received_ms >= ?", self.since_ms),
                   ("received_ms <= ?", self.until_ms), ("id < ?", self.before))
        used = [(sql, value) for sql, value in clauses if value is not None]
        if not used:
            return "", ()
        return " WHERE " + " AND ".join(sql for sql, _ in used), tuple(value for _, value in used)


class DeadLetters:
    def __init__(self, path: Path, max_rows: int = MAX_ROWS, max_bytes: int = MAX_BYTES_DEFAULT) -> None:
        self.path = path
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._db = connect(path, SCHEMA)
        self._pending: list[Rejected] = []
        rows, size = self._db.execute(f"SELECT count(*), coalesce(sum({ROW_BYTES}), 0) FROM rejected").fetchone()
        self.rows = int(rows)
        """Rows kept, a running total (counted at open)."""
        self.size_bytes = int(size)
        """Bytes of the rows kept (`ROW_BYTES`), a running total (summed at open)."""
        self.dropped = 0
        """Rows dropped to keep within the caps since the hub started (oldest first)."""

    def add(self, rejected: Rejected) -> None:
        self._pending.append(rejected)

    def keep_refused(self, event: PointsRejected) -> None:
        """`PointsRejected` handler: keep what the store refused, in its wire format (line protocol for
        InfluxDB: what was sent, as sent), committed before the writer lets the outbox forget it."""
        body = b"\n".join(event.bodies)
        self.add(Rejected("(store)", "storage_rejected", event.reason, body, int(time.time() * 1000),
                          refused_kind(body)))
        self.flush()

    def flush(self) -> None:
        """Write what is pending in one transaction, dropping the oldest rows past a cap in the same one."""
        if not self._pending:
            return
        rows = [(r.received_ms, r.topic, r.kind, r.reason, r.detail, r.payload) for r in self._pending]
        self._pending = []
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO rejected (received_ms, topic, kind, reason, detail, payload) VALUES (?,?,?,?,?,?)", rows
            )
            self.rows += len(rows)
            self.size_bytes += sum(_row_bytes(row) for row in rows)
            if self.rows > self.max_rows or self.size_bytes > self.max_bytes:
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        """Inside flush's transaction: the oldest rows until both caps hold (a row per step: rare, and small)."""
        excess_rows = self.rows - self.max_rows
        excess_bytes = self.size_bytes - self.max_bytes
        last, dropped, freed = 0, 0, 0
        for row_id, size in self._db.execute(f"SELECT id, {ROW_BYTES} FROM rejected ORDER BY id"):
            if dropped >= excess_rows and freed >= excess_bytes:
                break
            last, dropped, freed = row_id, dropped + 1, freed + size
        if dropped:
            self._db.execute("DELETE FROM rejected WHERE id <= ?", (last,))
            self.rows -= dropped
            self.size_bytes -= freed
            self.dropped += dropped

    def page(self, limit: int = 100, where: Filter = Filter()) -> tuple[list[dict[str, Any]], int | None]:
        """Newest rejected messages first, and the cursor of the next page (None on the last one): pass it as
        `before` to go on. New rows come with higher ids, so paging on while messages arrive repeats none
        and skips none."""
        sql, args = where.where()
        query = ("SELECT id, received_ms, topic, kind, reason, detail, payload"
                 f" FROM rejected{sql} ORDER BY id DESC LIMIT ?")
        out = []
        for row_id, received_ms, topic, kind, why, detail, payload in self._db.execute(query, (*args, limit + 1)):
            try:
                text, encoding = payload.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                text, encoding = payload.hex(), "hex"
            out.append({"id": row_id, "received": received_ms, "topic": topic, "kind": kind, "reason": why,
                        "detail": detail, "payload": text, "payload_encoding": encoding})
        if len(out) > limit:
            out.pop()
            return out, out[-1]["id"]
        return out, None

    def recent(self, limit: int = 100, reason: str | None = None) -> list[dict[str, Any]]:
        """Newest rejected messages first; the payload as text where it is UTF-8."""
        return self.page(limit, Filter(reason=reason))[0]

    def forget_before(self, before_ms: int) -> int:
        """Delete rejected messages received before `before_ms` (they may hold personal data)."""
        self.flush()
        sizes = self._db.execute(f"DELETE FROM rejected WHERE received_ms < ? RETURNING {ROW_BYTES}",
                                 (before_ms,)).fetchall()
        self.rows -= len(sizes)
        self.size_bytes -= sum(size for (size,) in sizes)
        return len(sizes)

    def close(self) -> None:
        self.flush()
        self._db.close()
