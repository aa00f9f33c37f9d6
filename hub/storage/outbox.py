"""The durable outbox between ingest and the store, and the writer that drains it.

Ingest appends batches of points to a SQLite file (WAL), each already in the
store's wire format (line protocol for InfluxDB: a point is encoded once, and
the writer only joins bytes); the writer sends the oldest batches to the store
and deletes them only once the store has them. A
store outage therefore costs nothing but disk: the writer probes the store
while it is away, and catches up in large batches as soon as it answers. The
disk is capped (`max_bytes`): `put` still accepts past it, and the caller turns
`full` into back-pressure (the MQTT edge stops reading, so stops acknowledging;
the broker queues). A batch is durable the moment `put` returns, and only then
does the MQTT edge acknowledge the QoS 1 messages it came from (`hub.mqtt`).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import random
import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devices.base import Point
from hub.events import PointsRejected
from hub.redelivery_window import DELIVERIES_KEPT, EVENT_KEYS_KEPT_MS
from hub.sqlite import connect
from hub.storage.base import (
    POINTS_JSON,
    Storage,
    StorageRejected,
    StorageUnavailable,
    WireFormat,
    points_from_json,
    points_json,
    split_points_json,
)
from hub.storage.batch import Batch, PointBatch

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    n INTEGER NOT NULL,
    body BLOB NOT NULL,
    format TEXT NOT NULL DEFAULT 'points-json'
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    n INTEGER NOT NULL,
    keys BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS event_keys (
    digest INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS event_keys_time ON event_keys (received_ms);
"""
"""`deliveries` and `event_keys` are the redelivery keys of `hub.ingest.redelivery`: committed in the
same transaction as the points they belong to. A batch's `format` is its store's `wire_format` (files
from before it held points JSON only, hence the default)."""

WRITE_BATCH_POINTS = 10_000
"""Points per store request: large enough to amortise HTTP, small enough to retry cheaply."""
WRITES_IN_FLIGHT = 2
"""Store requests at once: InfluxDB takes 12-20 us of its own CPU per 12-field point, one request on one
core, so a single stream of requests cannot keep up with 25,000 msg/s (`bench/ingest.py`)."""
WRITE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
EVENT_KEYS_PRUNE_EVERY_MS = 60_000
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
"""Backoff while the store answers pings but fails writes (overloaded, 5xx): no point hammering it."""
PROBE_EVERY_S = 0.5
"""While the store does not answer, it is pinged this often (the ping itself has a ~0.5 s budget)."""
SPLIT_WRITES_MAX = 64
"""Extra requests one refused part may cost while it is cut down to the points the store refuses: enough to
find a few bad points in a 10,000-point part (about 2 log2(n) requests each); past it, what is left untried is
dead-lettered as it is, and says so."""
MAX_BYTES_DEFAULT = 1024 * 2**20
NEAR_FULL_FILL = 0.8


class RefusedNotKept(Exception):
    """A handler of `PointsRejected` failed: the batch is not acknowledged, so nothing is lost."""


class PointsJson:
    """The neutral wire format, for an outbox with no store (tests, tools)."""

    wire_format = POINTS_JSON

    def encode(self, points: Sequence[Point]) -> bytes:
        return points_json(points)

    def batch(self) -> PointBatch:
        return PointBatch(points_json)

    def split(self, body: bytes) -> list[bytes]:
        return split_points_json(body)


@dataclass(slots=True)
class Taken:
    """The oldest batches, ready for the store: they stay in the outbox until `Outbox.ack`."""

    ids: list[int] = field(default_factory=list)
    points: int = 0
    bodies: list[bytes] = field(default_factory=list)
    """In the outbox's wire format, one per batch."""
    foreign: list[bytes] = field(default_factory=list)
    """A batch in a wire format this store cannot read (made for another store; never sent)."""


class Outbox:
    """Append-only queue of point batches on disk, with the keys that recognise redeliveries."""

    def __init__(self, path: Path, *, wire: WireFormat | None = None, max_bytes: int = MAX_BYTES_DEFAULT,
                 deliveries_kept: int = DELIVERIES_KEPT) -> None:
        """`wire` encodes the batches: the store they are for (points JSON when none is given)."""
        self.path = path
        self.wire = wire or PointsJson()
        self.deliveries_kept = deliveries_kept
        self._db = connect(path, SCHEMA)
        if "format" not in {row[1] for row in self._db.execute("PRAGMA table_info(batches)")}:
            self._db.execute("ALTER TABLE batches ADD COLUMN format TEXT NOT NULL DEFAULT 'points-json'")
        self.depth = int(self._db.execute("SELECT coalesce(sum(n), 0) FROM batches").fetchone()[0])
        """Points waiting for the store."""
        self.max_bytes = max_bytes
        """The disk cap on `size_bytes`; past it `full` is true (the file itself keeps its largest size)."""
        self.size_bytes = int(self._db.execute("SELECT coalesce(sum(length(body)), 0) FROM batches").fetchone()[0])
        """Bytes of the batches waiting (their bodies), kept as a running total."""
        self.ready = asyncio.Event()
        if self.depth:
            self.ready.set()
        rows = self._db.execute("SELECT id, n FROM deliveries ORDER BY id")
        self._delivery_rows: deque[tuple[int, int]] = deque(rows)
        self._delivery_keys = sum(n for _, n in self._delivery_rows)
        self._event_keys_pruned_ms = 0

    def put(self, points: Sequence[Point], deliveries: array | None = None,
            event_keys: Sequence[tuple[int, int]] = ()) -> None:
        """Append points as one batch (`commit`); raises Unstorable, storing nothing, for a point the store
        cannot keep."""
        batch = self.wire.batch()
        batch.add(points)
        self.commit(batch, deliveries, event_keys)

    def commit(self, batch: Batch, deliveries: array | None = None,
               event_keys: Sequence[tuple[int, int]] = ()) -> None:
        """Append one batch and its redelivery keys in one transaction; durable (against a hub crash)
        when this returns."""
        points = len(batch)
        if not points and not deliveries and not event_keys:
            return
        with self._db:
            self._db.execute("BEGIN")
            if points:
                body = batch.body()
                self._db.execute("INSERT INTO batches (n, body, format) VALUES (?, ?, ?)",
                                 (points, body, self.wire.wire_format))
                self.size_bytes += len(body)
            if deliveries:
                cursor = self._db.execute("INSERT INTO deliveries (n, keys) VALUES (?, ?)",
                                          (len(deliveries), deliveries.tobytes()))
                self._delivery_rows.append((int(cursor.lastrowid or 0), len(deliveries)))
                self._delivery_keys += len(deliveries)
                self._forget_old_deliveries()
            if event_keys:
                self._db.executemany("INSERT OR IGNORE INTO event_keys (digest, received_ms) VALUES (?, ?)",
                                     event_keys)
                self._forget_old_event_keys(event_keys[-1][1])
        if points:
            self.depth += points
            self.ready.set()

    def _forget_old_deliveries(self) -> None:
        """Keep the newest `deliveries_kept` keys (whole rows); inside put's transaction."""
        last = 0
        while self._delivery_rows and self._delivery_keys - self._delivery_rows[0][1] >= self.deliveries_kept:
            last, n = self._delivery_rows.popleft()
            self._delivery_keys -= n
        if last:
            self._db.execute("DELETE FROM deliveries WHERE id <= ?", (last,))

    def _forget_old_event_keys(self, now_ms: int) -> None:
        if now_ms - self._event_keys_pruned_ms >= EVENT_KEYS_PRUNE_EVERY_MS:
            self._event_keys_pruned_ms = now_ms
            self._db.execute("DELETE FROM event_keys WHERE received_ms < ?", (now_ms - EVENT_KEYS_KEPT_MS,))

    def delivery_keys(self) -> array:
        """Every kept delivery key, oldest first (loaded into `Deliveries` at start)."""
        keys = array("Q")
        for (blob,) in self._db.execute("SELECT keys FROM deliveries ORDER BY id"):
            keys.frombytes(blob)
        return keys

    def event_key_digests(self, limit: int) -> list[int]:
        """The newest `limit` event keys, oldest first (loaded into `EventKeys` at start)."""
        rows = self._db.execute("SELECT digest FROM event_keys ORDER BY received_ms DESC LIMIT ?", (limit,))
        return [digest for (digest,) in rows][::-1]

    def take(self, max_points: int = WRITE_BATCH_POINTS, parts: int = 1) -> list[Taken]:
        """The oldest batches as up to `parts` requests of up to `max_points` each (a batch is never split,
        so a part holds at least one); they stay until `ack`.

        A batch of points JSON (an older file) is encoded for this store now. One in another
        store's format (the file was moved between stores) comes back as a part of its own, in
        `foreign`, for the caller to keep elsewhere.
        """
        out: list[Taken] = []
        taken = Taken()
        wire = self.wire.wire_format
        for batch_id, n, body, fmt in self._db.execute(
                "SELECT id, n, body, format FROM batches ORDER BY id LIMIT ?", (200 * parts,)):
            foreign = fmt not in (wire, POINTS_JSON)
            if taken.ids and (foreign or taken.foreign or taken.points + n > max_points):
                out.append(taken)
                taken = Taken()
                if len(out) == parts:
                    return out
            taken.ids.append(batch_id)
            taken.points += n
            if foreign:
                taken.foreign.append(body)
            else:
                taken.bodies.append(body if fmt == wire else self.wire.encode(points_from_json(body)))
        if taken.ids:
            out.append(taken)
        return out

    def ack(self, ids: list[int], n_points: int) -> None:
        """Forget batches the store now holds."""
        if not ids:
            return
        sizes = self._db.execute(
            f"DELETE FROM batches WHERE id IN ({','.join('?' * len(ids))}) RETURNING length(body)", ids
        ).fetchall()
        self.depth -= n_points
        self.size_bytes = max(0, self.size_bytes - sum(size for (size,) in sizes))
        if self.depth <= 0:
            self.depth = 0
            self.size_bytes = 0
            self.ready.clear()

    @property
    def fill(self) -> float:
        """`size_bytes` as a share of `max_bytes` (1.0 and more: at or past the cap)."""
        return self.size_bytes / self.max_bytes

    @property
    def near_full(self) -> bool:
        """Time to raise the alarm: the store has been away long enough to fill most of the cap."""
        return self.fill >= NEAR_FULL_FILL

    @property
    def full(self) -> bool:
        """At the cap: the caller should stop taking new messages (back-pressure), not drop them."""
        return self.fill >= 1.0

    def close(self) -> None:
        self._db.close()


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    points: int = 0
    failures: int = 0
    rejected_points: int = 0
    split_writes: int = 0
    """Requests made to cut refused parts down to the points the store refuses."""
    store_up: bool = True
    store_since: float = field(default_factory=time.time)
    """time.time() when `store_up` last changed (or the writer was made)."""
    last_error: str | None = None
    """The last failed write's error, kept after the store is back."""
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(WRITE_BUCKETS_S) + 1))
    """Write latency histogram: counts per bucket of WRITE_BUCKETS_S, the last one +Inf."""
    latency_sum_s: float = 0.0

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(WRITE_BUCKETS_S, seconds)
        self.latency_counts[index] += 1
        self.latency_sum_s += seconds


def _halves(chunk: list[bytes]) -> list[list[bytes]]:
    """Two halves, the first last: popped first, so dead letters keep the batch's order."""
    middle = len(chunk) // 2
    return [chunk[middle:], chunk[:middle]]


class Writer:
    """Drains the outbox into the store, one request at a time.

    When a write fails because the store is unavailable, the writer pings it
    every PROBE_EVERY_S: a store that stopped answering (down, hung, restarting)
    is written to again as soon as a ping answers, so an outage ends within about
    a second of the store's return, and costs one ping per probe while it lasts
    (no batch sent again and again to a server that cannot take it). A store that
    answers pings but fails writes (overloaded, 5xx) is retried with capped
    exponential backoff instead.
    """

    def __init__(
        self,
        outbox: Outbox,
        storage: Storage,
        announce: Callable[[PointsRejected], bool],
        batch_points: int = WRITE_BATCH_POINTS,
        in_flight: int = WRITES_IN_FLIGHT,
    ) -> None:
        self.outbox = outbox
        self.storage = storage
        self.announce = announce
        """Hands what the store refused for good to whoever keeps it (`Events.emit`: the dead letters); False
        (a handler failed) keeps the batch in the outbox rather than acknowledge what nobody kept."""
        self.batch_points = batch_points
        self.in_flight = in_flight
        self.stats = WriterStats()

    async def run(self) -> None:
        """Forever: wait for data, write it, wait for the store while it is down."""
        backoff = BACKOFF_MIN_S
        while True:
            await self.outbox.ready.wait()
            if await self.write_once():
                backoff = BACKOFF_MIN_S
            else:
                await self.wait_for_store(backoff * (0.8 + 0.4 * random.random()))
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def wait_for_store(self, backoff_s: float) -> None:
        """After a failed write: return when a ping answers after one did not, or after `backoff_s` once
        pings answer (a store that is up but failing writes)."""
        deadline = time.monotonic() + backoff_s
        unreachable = False
        while True:
            left = deadline - time.monotonic()
            await asyncio.sleep(PROBE_EVERY_S if unreachable else max(0.0, min(PROBE_EVERY_S, left)))
            if not await self.storage.ping():
                unreachable = True
            elif unreachable or time.monotonic() >= deadline:
                return

    def _store_is(self, up: bool, error: str | None = None) -> None:
        """Record the store's state; log only the changes (once away, once back), never each retry."""
        if error is not None:
            self.stats.last_error = error
        if up == self.stats.store_up:
            return
        now = time.time()
        if up:
            log.warning("store is back after %.1f s away; %d points (%.1f MB) in the outbox to catch up",
                        now - self.stats.store_since, self.outbox.depth, self.outbox.size_bytes / 2**20)
        else:
            log.warning("store unavailable, buffering in the outbox (%d points waiting): %s", self.outbox.depth, error)
        self.stats.store_up = up
        self.stats.store_since = now

    async def write_once(self) -> bool:
        """Send the oldest batches, as up to `in_flight` requests at once; False when the store was
        unavailable (what it did not take stays queued, and goes first next time)."""
        parts = self.outbox.take(self.batch_points, self.in_flight)
        if len(parts) == 1:
            return await self._write(parts[0])
        return all(await asyncio.gather(*map(self._write, parts)))

    async def _write(self, taken: Taken) -> bool:
        if taken.foreign:
            self._refused(taken, f"an outbox batch for another store, not {self.outbox.wire.wire_format}")
            return True
        started = time.perf_counter()
        try:
            await self.storage.write_encoded(taken.bodies)
        except StorageUnavailable as exc:
            self.stats.failures += 1
            self._store_is(False, str(exc))
            return False
        except StorageRejected as exc:
            self._store_is(True, str(exc))  # it answered: it is there
            return await self._isolate(taken, str(exc))
        self.stats.observe(time.perf_counter() - started)
        self._stored(taken)
        return True

    def _stored(self, taken: Taken, refused_points: int = 0) -> None:
        self.stats.batches += 1
        self.stats.points += taken.points - refused_points
        self.outbox.ack(taken.ids, taken.points)
        self._store_is(True)  # after the ack, so the log says what is left

    async def _isolate(self, taken: Taken, reason: str) -> bool:
        """The store refused a part: write it again in halves, down to single points, so only the points it
        refuses alone are dead-lettered (not the other devices' points beside them). Writing a point again is
        harmless: both stores take the same point (series and time) as the same point, so what a partial write
        already stored is only overwritten with itself. At most SPLIT_WRITES_MAX requests; False (all kept in
        the outbox, written again later) if the store goes away meanwhile."""
        try:
            points = [one for body in taken.bodies for one in self.storage.split(body)]
        except ValueError as exc:
            self._refused(taken, f"{reason} (not split: {exc})")
            return True
        refused: list[tuple[list[bytes], str]] = []
        todo = _halves(points) if len(points) > 1 else []  # the whole was refused already
        if len(points) == 1:
            refused.append((points, reason))
        writes = 0
        while todo and writes < SPLIT_WRITES_MAX:
            chunk = todo.pop()
            writes += 1
            try:
                await self.storage.write_encoded(chunk)
            except StorageUnavailable as exc:
                self.stats.failures += 1
                self.stats.split_writes += writes
                self._store_is(False, str(exc))
                return False
            except StorageRejected as exc:
                if len(chunk) == 1:
                    refused.append((chunk, str(exc)))
                else:
                    todo += _halves(chunk)
        self.stats.split_writes += writes
        if todo:  # out of requests: the rest goes as it is, unsplit
            left = [one for chunk in reversed(todo) for one in chunk]
            refused.append((left, f"{reason} (not split further after {writes} requests: these {len(left)} points "
                                  "are kept together, and some of them may be stored)"))
        for bodies, why in refused:
            self._keep(bodies, why)
        count = sum(len(bodies) for bodies, _ in refused)
        log.error("store refused %d of a batch of %d points (%d requests to find them): %s",
                  count, taken.points, writes, reason)
        self.stats.rejected_points += count
        self._stored(taken, count)
        return True

    def _refused(self, taken: Taken, reason: str) -> None:
        """Retrying cannot help: keep the batches in the dead-letter store instead of losing them."""
        log.error("store refused a batch of %d points: %s", taken.points, reason)
        self.stats.rejected_points += taken.points
        self._keep(taken.bodies or taken.foreign, reason)
        self.outbox.ack(taken.ids, taken.points)

    def _keep(self, bodies: list[bytes], reason: str) -> None:
        """Announce refused points; raise (the batch stays in the outbox, the task restarts) if not kept."""
        if not self.announce(PointsRejected(tuple(bodies), reason)):
            raise RefusedNotKept(f"points the store refused were not kept ({reason}); they stay in the outbox")

    async def drain(self, timeout_s: float) -> bool:
        """Write until the outbox is empty or `timeout_s` passes (at shutdown); True if empty."""
        deadline = time.monotonic() + timeout_s
        while self.outbox.depth and time.monotonic() < deadline:
            if not await self.write_once():
                await asyncio.sleep(min(BACKOFF_MIN_S, max(0.0, deadline - time.monotonic())))
        return self.outbox.depth == 0
