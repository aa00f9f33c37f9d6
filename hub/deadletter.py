"""The dead-letter store: every rejected message, with why, kept for a person to look at.

Rows are buffered and written in one transaction per pipeline flush, so a flood
of bad messages costs one commit, not one per message, and never slows good ones.
The store is capped in rows and in bytes: past either cap the oldest rows go
first, each one counted (`dropped`), so a misbehaving device cannot fill the disk
and the loss is visible in `/metrics`. It is `deadletter.db`, or the shared PostgreSQL
database (`hub.statedb`): there the totals the caps are checked against are one row that
every copy's flush moves in its own transaction, so the caps hold for all copies together.
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
from hub.statedb import Dialect, Tx, open_state

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
    id {id},
    received_ms {int} NOT NULL,
    topic TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    payload {blob} NOT NULL
);
CREATE INDEX IF NOT EXISTS rejected_reason ON rejected (reason, id);
CREATE INDEX IF NOT EXISTS rejected_kind ON rejected (kind, id);
CREATE INDEX IF NOT EXISTS rejected_time ON rejected (received_ms);
"""
"""The indexes serve the filters of `GET /api/deadletters` (newest first, by id) and `forget_before`."""
TOTALS = """
CREATE TABLE IF NOT EXISTS deadletter_totals (id INTEGER PRIMARY KEY, n_rows {int} NOT NULL, n_bytes {int} NOT NULL);
INSERT INTO deadletter_totals (id, n_rows, n_bytes)
    SELECT 1, count(*), coalesce(sum(%s), 0) FROM rejected WHERE true ON CONFLICT DO NOTHING;
"""
"""Step 2: the rows and bytes kept, counted once from the rows there (SQLite wants the WHERE before an
INSERT ... SELECT's ON CONFLICT)."""

MAX_ROWS = 200_000
"""Oldest rows beyond this are dropped, so a misbehaving device cannot fill the disk."""
MAX_BYTES_DEFAULT = 256 * 2**20
ROW_OVERHEAD_BYTES = 40
"""Counted per row beside its text and payload: the id, the time and SQLite's record header, roughly."""
ROW_BYTES = ("length(payload) + length(CAST(topic AS BLOB)) + length(CAST(kind AS BLOB)) + "
             f"length(CAST(reason AS BLOB)) + length(CAST(detail AS BLOB)) + {ROW_OVERHEAD_BYTES}")
"""A row's size in SQLite's SQL, as `_row_bytes` counts it in Python (text as UTF-8)."""
PG_ROW_BYTES = ("octet_length(payload) + octet_length(topic) + octet_length(kind) + octet_length(reason) + "
                f"octet_length(detail) + {ROW_OVERHEAD_BYTES}")
"""The same in PostgreSQL's (which has no BLOB to cast to; SQLite 3.40 has no octet_length)."""
DROP_PAGE = 512
"""Oldest rows looked at per step while dropping: a cap passed by a flush costs a page, not a scan."""


def row_bytes_sql(dialect: Dialect) -> str:
    return PG_ROW_BYTES if dialect.name == "postgresql" else ROW_BYTES


def migrations(dialect: Dialect) -> tuple[str, ...]:
    """Schema steps (`hub.statedb`); the first is the schema of the SQLite-only versions."""
    return SCHEMA, TOTALS % row_bytes_sql(dialect)


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
    def __init__(self, path: Path, max_rows: int = MAX_ROWS, max_bytes: int = MAX_BYTES_DEFAULT,
                 database_url: str | None = None) -> None:
        self.path = path
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.state = open_state(database_url, path)
        self.state.migrate("deadletters", migrations(self.state.dialect))
        self._row_bytes = row_bytes_sql(self.state.dialect)
        self._pending: list[Rejected] = []
        rows, size = self.state.one("SELECT n_rows, n_bytes FROM deadletter_totals WHERE id = 1") or (0, 0)
        self.rows = int(rows)
        """Rows kept (all copies'), as of this process's last write."""
        self.size_bytes = int(size)
        """Bytes of the rows kept (`ROW_BYTES`), as of this process's last write."""
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
        added = sum(_row_bytes(row) for row in rows)

        def write(tx: Tx) -> tuple[int, int, int]:
            tx.executemany(
                "INSERT INTO rejected (received_ms, topic, kind, reason, detail, payload) VALUES (?,?,?,?,?,?)", rows
            )
            n, size = _moved(tx, len(rows), added)
            if n > self.max_rows or size > self.max_bytes:
                return self._drop_oldest(tx, n, size)
            return n, size, 0

        self.rows, self.size_bytes, dropped = self.state.transact(write)
        self.dropped += dropped

    def _drop_oldest(self, tx: Tx, n: int, size: int) -> tuple[int, int, int]:
        """Inside flush's transaction: the oldest rows until both caps hold, a page of ids at a time;
        returns the totals after, and how many rows went."""
        excess_rows, excess_bytes = n - self.max_rows, size - self.max_bytes
        last, dropped, freed = 0, 0, 0
        while dropped < excess_rows or freed < excess_bytes:
            page = tx.query(f"SELECT id, {self._row_bytes} FROM rejected WHERE id > ? ORDER BY id LIMIT ?",
                            (last, DROP_PAGE))
            for row_id, row_size in page:
                if dropped >= excess_rows and freed >= excess_bytes:
                    break
                last, dropped, freed = row_id, dropped + 1, freed + row_size
            if len(page) < DROP_PAGE:
                break
        if not dropped:
            return n, size, 0
        tx.execute("DELETE FROM rejected WHERE id <= ?", (last,))
        return (*_moved(tx, -dropped, -freed), dropped)

    def page(self, limit: int = 100, where: Filter = Filter()) -> tuple[list[dict[str, Any]], int | None]:
        """Newest rejected messages first, and the cursor of the next page (None on the last one): pass it as
        `before` to go on. New rows come with higher ids, so paging on while messages arrive repeats none
        and skips none."""
        sql, args = where.where()
        query = ("SELECT id, received_ms, topic, kind, reason, detail, payload"
                 f" FROM rejected{sql} ORDER BY id DESC LIMIT ?")
        out = []
        for row_id, received_ms, topic, kind, why, detail, payload in self.state.query(query, (*args, limit + 1)):
            payload = bytes(payload)
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

        def forget(tx: Tx) -> tuple[int, int, int]:
            sizes = tx.query(f"DELETE FROM rejected WHERE received_ms < ? RETURNING {self._row_bytes}", (before_ms,))
            return (*_moved(tx, -len(sizes), -sum(size for (size,) in sizes)), len(sizes))

        self.rows, self.size_bytes, forgotten = self.state.transact(forget)
        return forgotten

    def close(self) -> None:
        self.flush()
        self.state.close()


def _moved(tx: Tx, rows: int, size: int) -> tuple[int, int]:
    """Move the shared totals inside the caller's transaction; returns them as they now are (the row lock
    makes concurrent flushes of several copies take turns, each seeing the other's rows)."""
    [(n, total)] = tx.query("UPDATE deadletter_totals SET n_rows = n_rows + ?, n_bytes = n_bytes + ? WHERE id = 1"
                            " RETURNING n_rows, n_bytes", (rows, size))
    return int(n), int(total)
