"""The embedded store for zero-setup runs: SQLite (WAL) answering the same queries as InfluxDB.

It mirrors InfluxDB's semantics where the hub relies on them: a point is
identified by (measurement, tag set, time), and writing it again merges its
fields (later values win). Old points are pruned after a retention window.
Writes run on a worker thread so a large catch-up batch never stalls ingest.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from devices.base import Point
from hub.sqlite import connect
from hub.storage.base import EventQueries, StorageUnavailable

SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    measurement TEXT NOT NULL,
    series TEXT NOT NULL,          -- the tag set as canonical JSON
    time_ms INTEGER NOT NULL,
    site TEXT, device TEXT, type TEXT,
    fields TEXT NOT NULL,          -- JSON object
    PRIMARY KEY (measurement, series, time_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_time ON points (measurement, time_ms);
CREATE INDEX IF NOT EXISTS points_device_time ON points (device, time_ms);
"""

PRUNE_EVERY_S = 60.0


class EmbeddedStorage(EventQueries):
    name = "embedded"

    def __init__(self, path: Path, retention_days: float = 7.0) -> None:
        self.path = path
        self.retention_ms = int(retention_days * 86_400_000)
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._last_prune = 0.0

    async def start(self) -> None:
        self._db = connect(self.path, SCHEMA)

    async def close(self) -> None:
        if self._db is not None:
            async with self._lock:
                self._db.close()
            self._db = None

    async def ping(self) -> bool:
        return self._db is not None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageUnavailable("embedded store is not open")
        return self._db

    async def write(self, points: Sequence[Point]) -> None:
        db = self._conn()
        rows = []
        for measurement, tags, fields, time_ms in points:
            fields = {k: v for k, v in fields.items() if v is not None}
            if not fields:
                continue
            rows.append((measurement, orjson.dumps(tags, option=orjson.OPT_SORT_KEYS).decode(), time_ms,
                         tags.get("site"), tags.get("device"), tags.get("type"), orjson.dumps(fields).decode()))
        prune = time.monotonic() - self._last_prune > PRUNE_EVERY_S
        if prune:
            self._last_prune = time.monotonic()
        async with self._lock:
            await asyncio.to_thread(self._write_rows, db, rows, prune)

    def _write_rows(self, db: sqlite3.Connection, rows: list[tuple[Any, ...]], prune: bool) -> None:
        try:
            with db:
                db.execute("BEGIN")
                db.executemany(
                    "INSERT INTO points (measurement, series, time_ms, site, device, type, fields)"
                    " VALUES (?,?,?,?,?,?,?) ON CONFLICT (measurement, series, time_ms)"
                    " DO UPDATE SET fields = json_patch(fields, excluded.fields)",
                    rows,
                )
                if prune:
                    db.execute("DELETE FROM points WHERE time_ms < ?", (self._now_ms() - self.retention_ms,))
        except sqlite3.OperationalError as exc:  # disk full, locked: the outbox keeps the batch
            raise StorageUnavailable(f"embedded store: {exc}") from None

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    async def prune(self, now_ms: int | None = None) -> int:
        """Delete points older than the retention window; returns how many."""
        db = self._conn()
        cutoff = (now_ms if now_ms is not None else self._now_ms()) - self.retention_ms
        async with self._lock:
            with db:
                return db.execute("DELETE FROM points WHERE time_ms < ?", (cutoff,)).rowcount

    async def query_points(
        self,
        measurements: Sequence[str],
        where: dict[str, str],
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 100,
    ) -> list[tuple[str, int, dict[str, Any]]]:
        db = self._conn()
        sql = ("SELECT measurement, time_ms, series, fields FROM points"
               f" WHERE measurement IN ({','.join('?' * len(measurements))})")
        args: list[Any] = list(measurements)
        for tag, value in where.items():
            if tag in ("site", "device", "type"):
                sql += f" AND {tag} = ?"
            else:
                sql += " AND json_extract(series, '$.' || json_quote(?)) = ?"
                args.append(tag)
            args.append(value)
        if since_ms is not None:
            sql += " AND time_ms >= ?"
            args.append(since_ms)
        if until_ms is not None:
            sql += " AND time_ms <= ?"
            args.append(until_ms)
        sql += " ORDER BY time_ms DESC LIMIT ?"
        args.append(limit)
        async with self._lock:
            rows = db.execute(sql, args).fetchall()
        return [(m, t, {**orjson.loads(series), **orjson.loads(fields)}) for m, t, series, fields in rows]
