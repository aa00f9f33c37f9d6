"""The embedded store for zero-setup runs: SQLite (WAL) answering the same queries as InfluxDB.

It mirrors InfluxDB 1.x where the hub's behaviour depends on it, so a demo on
the embedded store shows what production on InfluxDB will do:

- a point is identified by (measurement, series key, time); writing it again
  merges its fields, later values winning;
- each field has one type (bool, integer, float, string) per measurement and
  shard, a shard being the week InfluxDB's default policy gives it; a point
  that conflicts is dropped, the rest of the batch is stored, and the write
  raises StorageRejected ("partial write: field type conflict ..."), so the hub
  dead-letters the same points on either store (InfluxDB then hides a field's
  other types in a query that spans shards; this store returns them all);
- the series key is the line-protocol one (`lineproto.series_key`), so points
  with equal times come back in InfluxDB's order too.

Old points are pruned after a retention window. Writes and reads run on a
worker thread: a 5,000-point catch-up batch takes about 75 ms, far too long to
hold the event loop (`bench/lineproto.py` measures it).
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from devices.base import Point
from hub.sqlite import connect
from hub.storage.base import (
    INCREASE_LOOKBACK_MS,
    POINTS_JSON,
    Aggregate,
    AggregateQuery,
    EventQueries,
    StorageRejected,
    StorageUnavailable,
    buckets,
    keep_groups,
    points_from_json,
    points_json,
    split_points_json,
)
from hub.storage.batch import PointBatch
from hub.storage.lineproto import INT_MAX, INT_MIN, check_names, series_key

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    series TEXT NOT NULL,          -- line-protocol series key: measurement,tag=value,... (sorted, escaped)
    time_ms INTEGER NOT NULL,
    measurement TEXT NOT NULL,
    site TEXT NOT NULL, device TEXT NOT NULL, type TEXT NOT NULL,  -- '' when absent, as InfluxDB compares
    tags TEXT NOT NULL,            -- JSON object, empty values dropped
    fields TEXT NOT NULL,          -- JSON object
    UNIQUE (series, time_ms)       -- a rowid table: rows are too wide for WITHOUT ROWID to pay off
);
CREATE INDEX IF NOT EXISTS points_time ON points (measurement, time_ms);
CREATE INDEX IF NOT EXISTS points_device_time ON points (measurement, device, time_ms);
-- Events of one type (passages, not barrier moves; session stops, not starts) without reading the others'
-- rows: the big screen's counts and `/api/events?type=`. A file from before it gets it at its first start.
CREATE INDEX IF NOT EXISTS points_type_time ON points (measurement, type, time_ms);
CREATE TABLE IF NOT EXISTS field_types (
    measurement TEXT NOT NULL,
    shard INTEGER NOT NULL,        -- time_ms // SHARD_MS
    field TEXT NOT NULL,
    type TEXT NOT NULL,
    PRIMARY KEY (measurement, shard, field)
) WITHOUT ROWID;
"""

READERS = 2
"""Read-only connections: queries run beside each other (one per core here) and beside writes, as WAL allows."""
READER_MMAP_BYTES = 2**31
"""Readers map the file (up to SQLite's 2 GiB cap) instead of reading pages into a small cache per query:
a day's aggregate touches a page per row or so, which halves its time."""
READER_CACHE_KIB = 65_536
"""Page cache per reader for what lies past the mapped part of a large file."""
PRUNE_EVERY_S = 60.0
SQL_AGGREGATES = {"count": "count", "sum": "sum", "mean": "avg", "max": "max", "min": "min"}
SHARD_MS = 7 * 86_400_000
"""InfluxDB 1.x's shard group duration for the default (infinite) retention policy: field types live per shard."""
INDEXED_TAGS = ("site", "device", "type")
"""Tags with their own column: the filters of `GET /api/events`."""

PING_TIMEOUT_S = 0.5
"""A ping's whole budget: a write stuck on a locked file holds our lock for SQLite's 5 s busy timeout."""
PING_BUSY_MS = 200
"""How long a ping's own try for the write lock waits for another process holding it."""

SERIES_CACHE_MAX = 100_000

_TYPE_NAMES = {bool: "boolean", int: "integer", float: "float", str: "string"}
T = TypeVar("T")


def _type_name(value: object) -> str:
    """InfluxDB's name for a field value's type; subclasses (enums) count as their base type."""
    name = _TYPE_NAMES.get(type(value))
    if name is None:
        for base, base_name in _TYPE_NAMES.items():  # bool first: it is an int subclass
            if isinstance(value, base):
                return base_name
        return "string"  # the line-protocol encoder writes anything else as its str()
    return name


def _plain(value: object) -> bool | int | float | str:
    """orjson's fallback for number-like objects it does not know: stored as the type they were checked as."""
    name = _type_name(value)
    if name == "boolean":
        return bool(value)
    if name in ("integer", "float"):
        return (int if name == "integer" else float)(value)  # type: ignore[arg-type, call-overload]
    return str(value)


def _can_write(db: sqlite3.Connection) -> bool:
    """Take and give back the write lock, waiting at most PING_BUSY_MS for another process (no disk write)."""
    busy_ms = db.execute("PRAGMA busy_timeout").fetchone()[0]
    try:
        db.execute(f"PRAGMA busy_timeout = {PING_BUSY_MS}")
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        return True
    except sqlite3.Error:
        return False
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")


class EmbeddedStorage(EventQueries):
    """A store in one SQLite file; the same protocol and the same test suite as InfluxStorage."""

    name = "embedded"
    wire_format = POINTS_JSON

    def __init__(self, path: Path, retention_days: float = 7.0) -> None:
        self.path = path
        self.retention_ms = int(retention_days * 86_400_000)
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        """Serialises writes (and deletes) on `_db`; reads take a connection from `_readers` instead."""
        self._readers: asyncio.Queue[sqlite3.Connection] | None = None
        self._last_prune = float("-inf")
        self._types: dict[tuple[str, int], dict[str, str]] = {}
        self._series: dict[tuple[object, ...], tuple[str, str, str, str, str, str]] = {}

    async def start(self) -> None:
        self._db = await asyncio.to_thread(self._open)
        readers: asyncio.Queue[sqlite3.Connection] = asyncio.Queue()
        for _ in range(READERS):
            readers.put_nowait(await asyncio.to_thread(self._open_reader))
        self._readers = readers

    def _open(self) -> sqlite3.Connection:
        db = connect(self.path, SCHEMA)
        self._types = {}
        for measurement, shard, field, type_ in db.execute("SELECT measurement, shard, field, type FROM field_types"):
            self._types.setdefault((measurement, shard), {})[field] = type_
        return db

    def _open_reader(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA query_only=1")
        db.execute(f"PRAGMA mmap_size={READER_MMAP_BYTES}")
        db.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
        return db

    async def _read(self, run: Callable[[sqlite3.Connection], T]) -> T:
        """Run a query on a free reader, on a worker thread. The reader goes back only when the thread is done,
        even if the caller is cancelled, so no two threads ever share one."""
        readers = self._readers
        if readers is None or self._db is None:
            raise StorageUnavailable("embedded store is not open")
        db = await readers.get()
        done = asyncio.ensure_future(asyncio.to_thread(run, db))
        done.add_done_callback(lambda _: readers.put_nowait(db))
        try:
            return await asyncio.shield(done)
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"embedded store {self.path}: {exc}") from None

    async def close(self) -> None:
        readers, self._readers = self._readers, None
        if readers is not None:
            for _ in range(READERS):  # waits for queries still running
                (await readers.get()).close()
        if self._db is not None:
            async with self._lock:
                self._db.close()
            self._db = None

    async def ping(self) -> bool:
        """True when a write could start now: the file is open and its write lock can be taken (another
        process, a backup or an `sqlite3` shell, may hold it). Answers within PING_TIMEOUT_S."""
        db = self._db
        if db is None:
            return False
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                await self._lock.acquire()
        except TimeoutError:
            return False
        return await self._holding_lock(lambda: _can_write(db))

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageUnavailable("embedded store is not open")
        return self._db

    def encode(self, points: Sequence[Point]) -> bytes:
        return points_json(points)

    def batch(self) -> PointBatch:
        return PointBatch(points_json)

    def split(self, body: bytes) -> list[bytes]:
        return split_points_json(body)

    async def write(self, points: Sequence[Point]) -> None:
        await self.write_encoded([self.encode(points)])

    async def _exclusive(self, run: Callable[[], T]) -> T:
        """Run `run` on a worker thread with the write connection to itself. The lock goes back only when the
        thread is done, even if the caller is cancelled: a cancelled write's thread goes on inside its
        transaction, and the next write on the same connection would fail ("cannot start a transaction
        within a transaction", once seen as a 2 s store outage at every stop under load)."""
        await self._lock.acquire()
        return await self._holding_lock(run)

    async def _holding_lock(self, run: Callable[[], T]) -> T:
        """With the write lock already taken: run `run` on a worker thread, and give the lock back when the
        thread is done, not when the caller stops waiting (see `_exclusive`)."""
        try:
            done = asyncio.ensure_future(asyncio.to_thread(run))
        except BaseException:
            self._lock.release()
            raise
        done.add_done_callback(lambda _: self._lock.release())
        return await asyncio.shield(done)

    async def write_encoded(self, bodies: Sequence[bytes]) -> None:
        """Store batches; conflicting points are dropped and reported after the rest is stored."""
        db = self._conn()
        prune = time.monotonic() - self._last_prune >= PRUNE_EVERY_S
        if prune:
            self._last_prune = time.monotonic()
        refused = await self._exclusive(lambda: self._decode_and_write(db, bodies, prune))
        if refused:  # worded as InfluxDB words it
            raise StorageRejected(f"partial write: {refused[0]} dropped={len(refused)}")

    def _decode_and_write(self, db: sqlite3.Connection, bodies: Sequence[bytes], prune: bool) -> list[str]:
        """On the worker thread, decoding too: a catch-up batch must not hold the event loop. Names are
        checked first, as InfluxDB's encoder does: a batch with a name no store can keep is refused whole."""
        points = [p for body in bodies for p in points_from_json(body)]
        for point in points:
            check_names(point)
        return self._write(db, points, prune)

    def _write(self, db: sqlite3.Connection, points: Sequence[Point], prune: bool) -> list[str]:
        """On the worker thread: check field types, upsert, prune; returns why points were dropped."""
        rows: list[tuple[Any, ...]] = []
        refused: list[str] = []
        new_types: dict[tuple[str, int], dict[str, str]] = {}
        types_get, names_get, series_get = self._types.get, _TYPE_NAMES.get, self._series.get
        for measurement, tags, fields, time_ms in points:
            shard = (measurement, time_ms // SHARD_MS)
            known = types_get(shard) or {}
            added = new_types.get(shard) or {}
            stored: dict[str, Any] = {}
            fresh: list[tuple[str, str]] = []
            problem = None
            for k, v in fields.items():
                t = names_get(type(v))
                if t is None:
                    if v is None:
                        continue
                    t = _type_name(v)
                if t == "float":
                    if not math.isfinite(v):  # type: ignore[arg-type]
                        continue
                elif t == "integer" and not INT_MIN <= v <= INT_MAX:  # type: ignore[operator]
                    problem = f'unable to parse "{measurement}" field "{k}": value out of range'
                    break
                was = known.get(k) or added.get(k)
                if was is None:
                    fresh.append((k, t))
                elif was != t:
                    problem = (f'field type conflict: input field "{k}" on measurement "{measurement}"'
                               f" is type {t}, already exists as type {was}")
                    break
                stored[k] = v
            if problem is not None:
                refused.append(problem)
                continue
            if not stored:
                continue
            if fresh:
                new_types.setdefault(shard, {}).update(fresh)
            key = (measurement, *tags.items())
            series = series_get(key) or self._series_columns(key, measurement, tags)
            rows.append((*series, time_ms, orjson.dumps(stored, default=_plain).decode()))
        try:
            with db:
                db.execute("BEGIN")
                db.executemany(
                    "INSERT INTO points (series, measurement, site, device, type, tags, time_ms, fields)"
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
        return refused

    def _series_columns(
        self, key: tuple[object, ...], measurement: str, tags: dict[str, str]
    ) -> tuple[str, str, str, str, str, str]:
        """(series, measurement, site, device, type, tags JSON) of a tag set; cached, as every point repeats it."""
        tags = {k: v for k, v in tags.items() if k and v}
        columns = (series_key(measurement, tags), measurement, tags.get("site", ""), tags.get("device", ""),
                   tags.get("type", ""), orjson.dumps(tags).decode())
        if len(self._series) >= SERIES_CACHE_MAX:
            self._series.clear()
        self._series[key] = columns
        return columns

    def _prune(self, db: sqlite3.Connection, now_ms: int) -> int:
        """Delete what is past retention: per measurement, so the (measurement, time) index does it."""
        cutoff = now_ms - self.retention_ms
        measurements = [m for (m,) in db.execute("SELECT DISTINCT measurement FROM field_types")]
        deleted = 0
        for measurement in measurements:  # every stored point has its field types recorded
            sql = "DELETE FROM points WHERE measurement = ? AND time_ms < ?"
            deleted += db.execute(sql, (measurement, cutoff)).rowcount
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

        return await self._exclusive(run)

    async def query_points(
        self,
        measurements: Sequence[str],
        where: dict[str, str],
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 100,
    ) -> list[tuple[str, int, dict[str, Any]]]:
        """Same rows in the same order as InfluxStorage: newest first, then measurement, then series desc.

        Like InfluxDB, one query per measurement, each walking its (measurement[, device], time)
        index newest first and stopping at `limit`; then the newest `limit` of them all.
        """
        if limit <= 0 or not measurements:
            return []
        sql = "SELECT time_ms, tags, fields FROM points WHERE measurement = ?"
        args: list[Any] = []
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
        sql += " ORDER BY time_ms DESC, series DESC"

        def run(db: sqlite3.Connection) -> list[tuple[str, int, dict[str, Any]]]:
            rows: list[tuple[str, int, dict[str, Any]]] = []
            for m in sorted(set(measurements)):
                taken = 0
                cursor = db.execute(sql, (m, *args))  # read lazily: stops at `limit`
                for t, tags, fields in cursor:
                    rows.append((m, t, {**orjson.loads(tags), **orjson.loads(fields)}))
                    taken += 1
                    if taken == limit:
                        break
                cursor.close()
            rows.sort(key=lambda r: -r[1])  # stable: measurement, then series order kept for equal times
            return rows[:limit]

        return await self._read(run)

    async def delete_events(self, kind: str, event_type: str, before_ms: int) -> None:
        db = self._conn()

        def run() -> None:
            with db:
                db.execute("DELETE FROM points WHERE measurement = ? AND type = ? AND time_ms < ?",
                           (f"{kind}_event", event_type, before_ms))

        await self._exclusive(run)

    async def aggregate(
        self, measurement: str, fn: Aggregate, field: str, where: dict[str, str], since_ms: int, until_ms: int,
        every_ms: int, offset_ms: int = 0,
    ) -> list[tuple[int, float | None]]:
        """The same buckets as InfluxDB's GROUP BY time(), computed in SQLite; `where` may name fields too."""
        query = AggregateQuery(measurement, fn, field, where, since_ms, until_ms, every_ms, offset_ms)
        return (await self.aggregate_many([query]))[0]

    async def aggregate_many(self, queries: Sequence[AggregateQuery]) -> list[list[tuple[int, float | None]]]:
        """One SQL pass per measurement and time range, each query one conditional aggregate column.

        Reading and parsing the rows is the cost, not aggregating: counting granted and denied
        access records in one pass costs little more than counting either. Passes run on the readers side by side.
        """
        passes: dict[tuple[str, int, int, int, int], list[int]] = {}
        for i, q in enumerate(queries):
            passes.setdefault((q.measurement, q.since_ms, q.until_ms, q.every_ms, q.offset_ms), []).append(i)
        answers: list[list[tuple[int, float | None]]] = [[] for _ in queries]

        async def one_pass(indices: list[int]) -> None:
            group = [queries[i] for i in indices]
            sql, args = _one_pass_sql(group)
            rows = await self._read(lambda db: db.execute(sql, args).fetchall())
            found = {bucket: values for bucket, *values in rows}
            for k, (i, q) in enumerate(zip(indices, group, strict=True)):
                values = [found[t][k] if t in found else None for t in q.buckets]
                answers[i] = [(t, q.empty if v is None else v) for t, v in zip(q.buckets, values, strict=True)]

        await asyncio.gather(*(one_pass(indices) for indices in passes.values()))
        return answers

    async def aggregate_by(
        self, measurement: str, fn: Aggregate, field: str, where: dict[str, str], since_ms: int, until_ms: int,
        every_ms: int, by: Sequence[str], offset_ms: int = 0,
    ) -> dict[tuple[str, ...], list[tuple[int, float | None]]]:
        """One SQL `GROUP BY bucket, tag, ...`, shaped as InfluxDB answers GROUP BY time(), tags."""
        rows = await self._aggregate_rows(measurement, fn, field, where, since_ms, until_ms, every_ms, offset_ms, by)
        groups: dict[tuple[str, ...], dict[int, float | None]] = {}
        setdefault = groups.setdefault
        for row in rows:
            setdefault(row[1:-1], {})[row[0]] = row[-1]
        return keep_groups(groups, fn, since_ms, until_ms, every_ms, offset_ms)

    async def increase(
        self, measurement: str, field: str, where: dict[str, str], since_ms: int, until_ms: int, every_ms: int,
        offset_ms: int = 0, lookback_ms: int = INCREASE_LOOKBACK_MS,
    ) -> list[tuple[int, float | None]]:
        """InfluxDB's answer in one SQL pass: `lag()` over each (site, device)'s readings in time order, steps
        down left out as `non_negative_difference` drops them, summed per bucket."""
        times = buckets(since_ms, until_ms, every_ms, offset_ms)
        since_ms = times[0] if times else since_ms
        sql = ("SELECT time_ms, site, device, json_extract(fields, ?) AS v FROM points"
               " WHERE measurement = ? AND time_ms >= ? AND time_ms < ?")
        args: list[Any] = [_path(field), measurement, since_ms - lookback_ms, until_ms]
        for key, value in where.items():
            condition, condition_args = _equals(key, value)
            sql += f" AND {condition}"
            args += condition_args
        sql = (f"WITH readings AS ({sql}), steps AS (SELECT time_ms, v - lag(v) OVER"
               " (PARTITION BY site, device ORDER BY time_ms) AS step FROM readings WHERE v IS NOT NULL)"
               " SELECT (time_ms - ?) / ? * ? + ? AS bucket, sum(CASE WHEN step >= 0 THEN step END) FROM steps"
               " WHERE time_ms >= ? GROUP BY bucket")
        args += [offset_ms, every_ms, every_ms, offset_ms, since_ms]
        found = dict(await self._read(lambda db: db.execute(sql, args).fetchall()))
        return [(t, found.get(t)) for t in times]

    async def _aggregate_rows(
        self, measurement: str, fn: Aggregate, field: str, where: dict[str, str], since_ms: int, until_ms: int,
        every_ms: int, offset_ms: int, by: Sequence[str],
    ) -> list[tuple[Any, ...]]:
        """(bucket, *group tag values, fn(field)) rows; a range scan of the (measurement, time) index.

        Parsing each row's JSON is what costs (about 1 us a row), so each document is looked into
        once or twice: SQL aggregates skip NULLs, so points without the field need no filter of their own.
        """
        groups = [_tag_column(tag) for tag in by]
        sql = (f"SELECT (time_ms - ?) / ? * ? + ? AS bucket, {''.join(g + ', ' for g in groups)}"
               f"{SQL_AGGREGATES[fn]}(json_extract(fields, ?))"
               " FROM points WHERE measurement = ? AND time_ms >= ? AND time_ms < ?")
        args: list[Any] = [offset_ms, every_ms, every_ms, offset_ms, *(a for tag in by for a in _tag_args(tag)),
                           _path(field), measurement, since_ms, until_ms]
        for key, value in where.items():
            condition, condition_args = _equals(key, value)
            sql += f" AND {condition}"
            args += condition_args
        sql += " GROUP BY bucket" + "".join(f", {i + 2}" for i in range(len(by)))
        return await self._read(lambda db: db.execute(sql, args).fetchall())


def _one_pass_sql(queries: Sequence[AggregateQuery]) -> tuple[str, list[Any]]:
    """SELECT bucket, fn(CASE WHEN where THEN field END) per query ... GROUP BY bucket, for queries of one
    measurement and time range. Tag columns all of them filter on alike go into the WHERE clause."""
    first = queries[0]
    common = {(k, v) for k, v in first.where.items() if k in INDEXED_TAGS}
    for q in queries[1:]:
        common &= set(q.where.items())
    columns, select_args = [], []
    for q in queries:
        conditions, args = [], []
        for key, value in q.where.items():
            if (key, value) not in common:
                condition, condition_args = _equals(key, value)
                conditions.append(condition)
                args += condition_args
        value_sql = "json_extract(fields, ?)"
        if conditions:
            value_sql = f"CASE WHEN {' AND '.join(conditions)} THEN {value_sql} END"
        columns.append(f"{SQL_AGGREGATES[q.fn]}({value_sql})")
        select_args += [*args, _path(q.field)]
    sql = (f"SELECT (time_ms - ?) / ? * ? + ? AS bucket, {', '.join(columns)} FROM points"
           " WHERE measurement = ? AND time_ms >= ? AND time_ms < ?"
           + "".join(f" AND {key} = ?" for key, _ in sorted(common)) + " GROUP BY bucket")
    args = [first.offset_ms, first.every_ms, first.every_ms, first.offset_ms, *select_args,
            first.measurement, first.since_ms, first.until_ms, *(value for _, value in sorted(common))]
    return sql, args


def _equals(key: str, value: str) -> tuple[str, list[Any]]:
    """SQL and arguments for `key = value` on a tag, or else a field (InfluxQL's WHERE takes either)."""
    if key in INDEXED_TAGS:
        return f"{key} = ?", [value]
    return f"coalesce({_tag_value(key)}, json_extract(fields, ?), '') = ?", [*_tag_args(key), _path(key), value]


def _path(name: str) -> str:
    """SQLite JSON path of a top-level key."""
    return f'$."{name}"'


def _plain_key(name: str) -> bool:
    """A key a JSON path can quote (SQLite's paths have no escape for a quote or backslash)."""
    return '"' not in name and "\\" not in name


def _tag_value(tag: str) -> str:
    """SQL for a non-indexed tag's value from the tags JSON, NULL when missing (its `?`s: `_tag_args`).

    The tags JSON is orjson's compact form, so a tag that is there appears as `"key":`; `instr` finds it without
    parsing, and most rows (filters on fields such as a passage's `direction`) never parse their tags at all.
    """
    if _plain_key(tag):
        return "CASE WHEN instr(tags, ?) THEN json_extract(tags, ?) END"
    return "(SELECT value FROM json_each(tags) WHERE key = ?)"


def _tag_column(tag: str) -> str:
    """SQL for a tag's value ('' when missing, as InfluxDB groups it): its own column, else from the JSON."""
    return tag if tag in INDEXED_TAGS else f"coalesce({_tag_value(tag)}, '')"


def _tag_args(tag: str) -> list[Any]:
    if tag in INDEXED_TAGS:
        return []
    return [orjson.dumps(tag).decode() + ":", _path(tag)] if _plain_key(tag) else [tag]
