"""The embedded store for zero-setup runs: SQLite (WAL) answering the same queries as InfluxDB.

It mirrors InfluxDB 1.x where the hub's behaviour depends on it, so a demo on
the embedded store shows what production on InfluxDB will do:

- a point is identified by (measurement, series key, time); writing it again
  merges its fields, later values winning;
- each field has one type (bool, integer, float, string) per measurement and
  shard, a shard being the week InfluxDB's default policy gives it; a point
  that conflicts is dropped, the rest of the batch is stored, and the write
  raises StorageRejected ("partial write: field type conflict ...");
- the series key is the line-protocol one (`lineproto.series_key`), so points
  with equal times come back in InfluxDB's order too.

Old points are pruned after a retention window. Writes run on a worker
thread: a 5,000-point catch-up batch takes tens of milliseconds, too long to
hold the event loop (see `bench/lineproto.py --embedded`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from devices.base import Point
from hub.sqlite import connect
from hub.storage.base import EventQueries, StorageRejected, StorageUnavailable
from hub.storage.lineproto import series_key

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    series TEXT NOT NULL,          -- line-protocol series key: measurement,tag=value,... (sorted, escaped)
    time_ms INTEGER NOT NULL,
    measurement TEXT NOT NULL,
    site TEXT NOT NULL, device TEXT NOT NULL, type TEXT NOT NULL,  -- '' when absent, as InfluxDB compares
    tags TEXT NOT NULL,            -- JSON object, empty values dropped
    fields TEXT NOT NULL,          -- JSON object
    PRIMARY KEY (series, time_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_time ON points (measurement, time_ms);
CREATE INDEX IF NOT EXISTS points_device_time ON points (measurement, device, time_ms);
CREATE INDEX IF NOT EXISTS points_pruning ON points (time_ms);
CREATE TABLE IF NOT EXISTS field_types (
    measurement TEXT NOT NULL,
    shard INTEGER NOT NULL,        -- time_ms // SHARD_MS
    field TEXT NOT NULL,
    type TEXT NOT NULL,
    PRIMARY KEY (measurement, shard, field)
) WITHOUT ROWID;
"""

PRUNE_EVERY_S = 60.0
SHARD_MS = 7 * 86_400_000
"""InfluxDB 1.x's shard group duration for the default (infinite) retention policy: field types live per shard."""
INDEXED_TAGS = ("site", "device", "type")
"""Tags with their own column: the filters of `GET /api/events`."""

_TYPE_NAMES = {bool: "boolean", int: "integer", float: "float", str: "string"}


def _type_name(value: object) -> str:
    """InfluxDB's name for a field value's type; subclasses (enums) count as their base type."""
    name = _TYPE_NAMES.get(type(value))
    if name is None:
        for base, base_name in _TYPE_NAMES.items():  # bool first: it is an int subclass
            if isinstance(value, base):
                return base_name
        return "string"  # the line-protocol encoder writes anything else as its str()
    return name


def _storable(value: object) -> bool:
    """False where InfluxDB would get no value: None, NaN and infinities."""
    if value is None:
        return False
    return not isinstance(value, float) or math.isfinite(value)


class EmbeddedStorage(EventQueries):
    """A store in one SQLite file; the same protocol and the same test suite as InfluxStorage."""

    name = "embedded"

    def __init__(self, path: Path, retention_days: float = 7.0) -> None:
        self.path = path
        self.retention_ms = int(retention_days * 86_400_000)
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._last_prune = float("-inf")
        self._types: dict[tuple[str, int], dict[str, str]] = {}

    async def start(self) -> None:
        self._db = await asyncio.to_thread(self._open)

    def _open(self) -> sqlite3.Connection:
        db = connect(self.path, "")
        columns = {row[1] for row in db.execute("PRAGMA table_info(points)")}
        old = bool(columns) and "tags" not in columns
        if old:  # the first layout (tags as `series` JSON, no field types): copy it over once
            db.execute("ALTER TABLE points RENAME TO points_v0")
            for index in ("points_time", "points_device_time"):
                db.execute(f"DROP INDEX IF EXISTS {index}")
        db.executescript(SCHEMA)
        self._types = {}
        for measurement, shard, field, type_ in db.execute("SELECT measurement, shard, field, type FROM field_types"):
            self._types.setdefault((measurement, shard), {})[field] = type_
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'points_v0'").fetchone():  # also after a crash
            rows = db.execute("SELECT measurement, series, fields, time_ms FROM points_v0").fetchall()
            points = [Point(m, orjson.loads(tags), orjson.loads(fields), t) for m, tags, fields, t in rows]
            dropped = len(self._write(db, points, prune=False))
            db.execute("DROP TABLE points_v0")
            log.warning("embedded store %s: moved %d points to the new layout (%d type conflicts dropped)",
                        self.path, len(points) - dropped, dropped)
        return db

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
        """Store a batch; conflicting points are dropped and reported after the rest is stored."""
        db = self._conn()
        prune = time.monotonic() - self._last_prune >= PRUNE_EVERY_S
        async with self._lock:
            conflicts = await asyncio.to_thread(self._write, db, points, prune)
        if prune:
            self._last_prune = time.monotonic()
        if conflicts:
            raise StorageRejected(f"partial write: field type conflict: {conflicts[0]} dropped={len(conflicts)}")

    def _write(self, db: sqlite3.Connection, points: Sequence[Point], prune: bool) -> list[str]:
        """On the worker thread: check field types, upsert, prune; returns the conflicts."""
        rows: list[tuple[Any, ...]] = []
        conflicts: list[str] = []
        new_types: dict[tuple[str, int], dict[str, str]] = {}
        for measurement, tags, fields, time_ms in points:
            stored = {k: v for k, v in fields.items() if _storable(v)}
            if not stored:
                continue
            shard = (measurement, time_ms // SHARD_MS)
            known = self._types.get(shard, {})
            added = new_types.get(shard, {})
            types = {k: _type_name(v) for k, v in stored.items()}
            conflict = next(
                (f'input field "{k}" on measurement "{measurement}" is type {t}, already exists as type {was}'
                 for k, t in types.items() if (was := known.get(k) or added.get(k, t)) != t),
                None,
            )
            if conflict is not None:
                conflicts.append(conflict)
                continue
            for k, t in types.items():
                if k not in known:
                    new_types.setdefault(shard, {})[k] = t
            tags = {k: v for k, v in tags.items() if k and v}
            rows.append((series_key(measurement, tags), time_ms, measurement, tags.get("site", ""),
                         tags.get("device", ""), tags.get("type", ""), orjson.dumps(tags).decode(),
                         orjson.dumps(stored).decode()))
        try:
            with db:
                db.execute("BEGIN")
                db.executemany(
                    "INSERT INTO points (series, time_ms, measurement, site, device, type, tags, fields)"
                    " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (series, time_ms)"
                    " DO UPDATE SET fields = json_patch(fields, excluded.fields)",
                    rows,
                )
                db.executemany(
                    "INSERT INTO field_types (measurement, shard, field, type) VALUES (?,?,?,?)",
                    [(m, s, k, t) for (m, s), added in new_types.items() for k, t in added.items()],
                )
                if prune:
                    self._prune(db, int(time.time() * 1000))
        except sqlite3.Error as exc:  # disk full, I/O error: the outbox keeps the batch
            raise StorageUnavailable(f"embedded store {self.path}: {exc}") from None
        for shard, added in new_types.items():  # only once committed, or a failed batch would leave types
            self._types.setdefault(shard, {}).update(added)
        return conflicts

    def _prune(self, db: sqlite3.Connection, now_ms: int) -> int:
        cutoff = now_ms - self.retention_ms
        deleted = db.execute("DELETE FROM points WHERE time_ms < ?", (cutoff,)).rowcount
        # A shard's field types go with its last possible point, as InfluxDB drops whole shards.
        last_gone = (cutoff - SHARD_MS) // SHARD_MS
        db.execute("DELETE FROM field_types WHERE shard <= ?", (last_gone,))
        for shard in [s for s in self._types if s[1] <= last_gone]:
            del self._types[shard]
        return deleted

    async def prune(self, now_ms: int | None = None) -> int:
        """Delete points older than the retention window; returns how many."""
        db = self._conn()
        now = int(time.time() * 1000) if now_ms is None else now_ms

        def run() -> int:
            with db:
                db.execute("BEGIN")
                return self._prune(db, now)

        async with self._lock:
            return await asyncio.to_thread(run)

    async def query_points(
        self,
        measurements: Sequence[str],
        where: dict[str, str],
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 100,
    ) -> list[tuple[str, int, dict[str, Any]]]:
        """Same rows in the same order as InfluxStorage: newest first, then measurement, then series desc."""
        db = self._conn()
        if limit <= 0 or not measurements:
            return []
        sql = "SELECT measurement, time_ms, tags, fields FROM points WHERE measurement IN ({})".format(
            ",".join("?" * len(measurements))
        )
        args: list[Any] = list(measurements)
        for tag, value in where.items():
            if tag in INDEXED_TAGS:
                sql += f" AND {tag} = ?"
            else:  # InfluxDB compares a missing tag as ''
                sql += " AND coalesce((SELECT value FROM json_each(tags) WHERE key = ?), '') = ?"
                args.append(tag)
            args.append(value)
        if since_ms is not None:
            sql += " AND time_ms >= ?"
            args.append(since_ms)
        if until_ms is not None:
            sql += " AND time_ms <= ?"
            args.append(until_ms)
        sql += " ORDER BY time_ms DESC, measurement, series DESC LIMIT ?"
        args.append(limit)
        async with self._lock:
            rows = await asyncio.to_thread(lambda: db.execute(sql, args).fetchall())
        return [(m, t, {**orjson.loads(tags), **orjson.loads(fields)}) for m, t, tags, fields in rows]
