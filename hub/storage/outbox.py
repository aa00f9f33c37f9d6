"""The durable outbox between ingest and the store, and the writer that drains it.

Ingest appends batches of points to a SQLite file (WAL); the writer sends the
oldest batches to the store and deletes them only once the store has them. A
store outage therefore costs nothing but disk: the writer backs off, retries,
and catches up in large batches when the store is back. Because a batch is
durable the moment `put` returns, a QoS 1 message can be acknowledged to the
broker right after it (see `Pipeline.flush`).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from devices.base import Point
from hub.sqlite import connect
from hub.storage.base import Storage, StorageRejected, StorageUnavailable

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    n INTEGER NOT NULL,
    body BLOB NOT NULL
);
"""

WRITE_BATCH_POINTS = 5_000
"""Points per store request: large enough to amortise HTTP, small enough to retry cheaply."""
WRITE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0


class Outbox:
    """Append-only queue of point batches on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = connect(path, SCHEMA)
        self.depth = int(self._db.execute("SELECT coalesce(sum(n), 0) FROM batches").fetchone()[0])
        """Points waiting for the store."""
        self.ready = asyncio.Event()
        if self.depth:
            self.ready.set()

    def put(self, points: Sequence[Point]) -> None:
        """Append one batch; durable (against a hub crash) when this returns."""
        if not points:
            return
        body = orjson.dumps(points, default=tuple)  # a Point is a tuple subclass, which orjson leaves to us
        self._db.execute("INSERT INTO batches (n, body) VALUES (?, ?)", (len(points), body))
        self.depth += len(points)
        self.ready.set()

    def take(self, max_points: int = WRITE_BATCH_POINTS) -> tuple[list[int], list[Point]]:
        """The oldest batches, up to `max_points` (at least one batch); they stay until `ack`."""
        ids: list[int] = []
        points: list[Point] = []
        for batch_id, n, body in self._db.execute("SELECT id, n, body FROM batches ORDER BY id LIMIT 200"):
            if points and len(points) + n > max_points:
                break
            ids.append(batch_id)
            points.extend(Point(*row) for row in orjson.loads(body))
        return ids, points

    def ack(self, ids: list[int], n_points: int) -> None:
        """Forget batches the store now holds."""
        if not ids:
            return
        self._db.execute(f"DELETE FROM batches WHERE id IN ({','.join('?' * len(ids))})", ids)
        self.depth -= n_points
        if self.depth <= 0:
            self.depth = 0
            self.ready.clear()

    def close(self) -> None:
        self._db.close()


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    points: int = 0
    failures: int = 0
    rejected_points: int = 0
    store_up: bool = True
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(WRITE_BUCKETS_S) + 1))
    """Write latency histogram: counts per bucket of WRITE_BUCKETS_S, the last one +Inf."""
    latency_sum_s: float = 0.0

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(WRITE_BUCKETS_S, seconds)
        self.latency_counts[index] += 1
        self.latency_sum_s += seconds


class Writer:
    """Drains the outbox into the store, one request at a time, with capped exponential backoff."""

    def __init__(
        self,
        outbox: Outbox,
        storage: Storage,
        on_rejected: Callable[[list[Point], str], None],
        batch_points: int = WRITE_BATCH_POINTS,
    ) -> None:
        self.outbox = outbox
        self.storage = storage
        self.on_rejected = on_rejected
        self.batch_points = batch_points
        self.stats = WriterStats()

    async def run(self) -> None:
        """Forever: wait for data, write it, back off while the store is down."""
        backoff = BACKOFF_MIN_S
        while True:
            await self.outbox.ready.wait()
            if await self.write_once():
                backoff = BACKOFF_MIN_S
            else:
                await asyncio.sleep(backoff * (0.8 + 0.4 * random.random()))
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def write_once(self) -> bool:
        """Send the oldest batches; False when the store was unavailable (they stay queued)."""
        ids, points = self.outbox.take(self.batch_points)
        if not ids:
            return True
        started = time.perf_counter()
        try:
            await self.storage.write(points)
        except StorageUnavailable as exc:
            self.stats.failures += 1
            if self.stats.store_up:
                log.warning("store unavailable, buffering in the outbox: %s", exc)
            self.stats.store_up = False
            return False
        except StorageRejected as exc:
            # Retrying cannot help; keep the points in the dead-letter store instead of losing them.
            log.error("store rejected a batch of %d points: %s", len(points), exc)
            self.stats.rejected_points += len(points)
            self.on_rejected(points, str(exc))
        else:
            self.stats.observe(time.perf_counter() - started)
            self.stats.batches += 1
            self.stats.points += len(points)
            if not self.stats.store_up:
                log.warning("store is back; %d points still to catch up", self.outbox.depth - len(points))
            self.stats.store_up = True
        self.outbox.ack(ids, len(points))
        return True

    async def drain(self, timeout_s: float) -> bool:
        """Write until the outbox is empty or `timeout_s` passes (at shutdown); True if empty."""
        deadline = time.monotonic() + timeout_s
        while self.outbox.depth and time.monotonic() < deadline:
            if not await self.write_once():
                await asyncio.sleep(min(BACKOFF_MIN_S, max(0.0, deadline - time.monotonic())))
        return self.outbox.depth == 0
