"""Partition leases in the shared state database, with a fencing epoch, judged by the database's clock.

A copy announces itself (`beat`) and holds each partition it runs by a lease it renews every tick. A lease
is taken only when it is free, expired or already the taker's, and every taking moves its epoch on. A copy
that could not renew in time has lost the partition: its epoch no longer matches, so `holds` (checked in
the same transaction as a write of that partition's state, under a row lock on PostgreSQL) refuses it,
and a copy that cannot reach the database stops its partitions before its leases can expire (`Coordinator`).
All times are the database's (`Dialect.now_ms`), so copies whose clocks differ still agree.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hub.cluster.assign import Lease, Plan, assign, plan
from hub.statedb import PostgresState, StateDb, StateError, Tx, open_state

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS hub_copies (
        copy_id TEXT PRIMARY KEY,
        seen_ms {int} NOT NULL,
        started_ms {int} NOT NULL
    );
    CREATE TABLE IF NOT EXISTS partition_leases (
        part TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        epoch {int} NOT NULL,
        expires_ms {int} NOT NULL
    );
    """,
]

LEASE_MS = 6_000
"""A lease lasts this long unless renewed: a dead copy's partitions are free again after it."""
COPY_SEEN_MS = 5_000
"""A copy not heard from for this long is dead to the others: they stop assigning it work."""
TICK_S = 1.0
"""How often a copy beats, renews and rebalances: a dead copy's work moves within LEASE_MS + TICK_S
(7 s), then its MQTT session's connect."""
FENCE_MARGIN_S = 2.0
"""A copy that could not renew stops a partition this long before its lease could have expired."""
CALL_TIMEOUT_S = 1.5
"""A lease call that takes longer counts as failed (the database is away or stalled): the coordinator must
keep its own time to fence itself, whatever the database does."""
RETRY_S = 0.5
"""The lease table's own connection retries this long (the stores' default is 15 s: far past a lease)."""


def open_table(database_url: str | None, sqlite_path: Path) -> LeaseTable:
    """The lease table on a connection of its own, with a short retry (`RETRY_S`): never behind a store's
    15 s of retries, which would outlast every lease."""
    if database_url:
        return LeaseTable(PostgresState(database_url, retry_s=RETRY_S))
    return LeaseTable(open_state(None, sqlite_path))


class LeaseTable:
    """The two tables, as plain synchronous calls (the coordinator runs them off the event loop)."""

    def __init__(self, db: StateDb) -> None:
        self.db = db
        db.migrate("cluster", SCHEMA)
        self._now = db.dialect.now_ms

    def now_ms(self) -> int:
        row = self.db.one(f"SELECT {self._now}")
        assert row is not None
        return int(row[0])

    def beat(self, copy_id: str) -> int:
        """Say this copy is alive; returns the database's time (ms)."""
        now = self._now
        self.db.execute(f"INSERT INTO hub_copies (copy_id, seen_ms, started_ms) VALUES (?, {now}, {now}) "
                        f"ON CONFLICT (copy_id) DO UPDATE SET seen_ms = excluded.seen_ms", (copy_id,))
        return self.now_ms()

    def leave(self, copy_id: str) -> None:
        """A clean stop: the others stop counting on this copy at once, not after COPY_SEEN_MS."""
        self.db.execute("DELETE FROM hub_copies WHERE copy_id = ?", (copy_id,))

    def live_copies(self, seen_ms: int = COPY_SEEN_MS) -> list[str]:
        rows = self.db.query(f"SELECT copy_id FROM hub_copies WHERE seen_ms > {self._now} - ? ORDER BY copy_id",
                             (seen_ms,))
        return [r[0] for r in rows]

    def leases(self) -> dict[str, Lease]:
        rows = self.db.query("SELECT part, owner, epoch, expires_ms FROM partition_leases")
        return {r[0]: Lease(r[0], r[1], int(r[2]), int(r[3])) for r in rows}

    def acquire(self, part: str, owner: str, lease_ms: int = LEASE_MS) -> int | None:
        """Take the lease if it is free, expired or ours; its new epoch, or None when another copy holds it."""
        now = self._now
        rows = self.db.transact(lambda tx: tx.query(
            f"INSERT INTO partition_leases (part, owner, epoch, expires_ms) VALUES (?, ?, 1, {now} + ?) "
            f"ON CONFLICT (part) DO UPDATE SET owner = excluded.owner, epoch = partition_leases.epoch + 1, "
            f"expires_ms = excluded.expires_ms "
            f"WHERE partition_leases.expires_ms <= {now} OR partition_leases.owner = excluded.owner "
            f"RETURNING epoch", (part, owner, lease_ms)))
        return int(rows[0][0]) if rows else None

    def renew(self, part: str, owner: str, epoch: int, lease_ms: int = LEASE_MS) -> bool:
        """Extend a lease still held at this epoch; False when it was lost (expired, or taken over)."""
        now = self._now
        changed = self.db.execute(f"UPDATE partition_leases SET expires_ms = {now} + ? WHERE part = ? AND owner = ? "
                                  f"AND epoch = ? AND expires_ms > {now}", (lease_ms, part, owner, epoch))
        return changed == 1

    def release(self, part: str, owner: str, epoch: int) -> None:
        """Give the lease up now (the epoch stays: the next taker moves it on)."""
        self.db.execute("UPDATE partition_leases SET expires_ms = 0 WHERE part = ? AND owner = ? AND epoch = ?",
                        (part, owner, epoch))

    def settle(self, owner: str, release: dict[str, int], renew: dict[str, int], acquire: Iterable[str],
               lease_ms: int = LEASE_MS) -> tuple[set[str], dict[str, int]]:
        """One tick's writes in one round: give up `release`, renew `renew`, take `acquire`.
        Returns (the partitions renewed, partition -> epoch of those taken)."""
        for part, epoch in release.items():
            self.release(part, owner, epoch)
        renewed = {part for part, epoch in renew.items() if self.renew(part, owner, epoch, lease_ms)}
        taken = {part: epoch for part in acquire if (epoch := self.acquire(part, owner, lease_ms)) is not None}
        return renewed, taken

    def holds(self, tx: Tx, part: str, owner: str, epoch: int) -> bool:
        """Inside a write transaction: is the lease still ours at this epoch? On PostgreSQL the row stays
        share-locked to the commit, so a taker's update waits for that write instead of racing it."""
        rows = tx.query(f"SELECT 1 FROM partition_leases WHERE part = ? AND owner = ? AND epoch = ? "
                        f"AND expires_ms > {self._now}{self.db.dialect.for_share}", (part, owner, epoch))
        return bool(rows)


Start = Callable[[str, int], Awaitable[None]]
"""Start running a partition at this epoch (connect its MQTT session, ...)."""
Stop = Callable[[str], Awaitable[None]]
"""Stop running it: commit and acknowledge what was handled, then disconnect; returns when done."""


def _in_thread(fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
    """`fn(*args)` in a daemon thread of its own. Not the loop's executor: a call stuck on a hung database
    (a frozen server still has its TCP connections acknowledged by the kernel, so nothing times out) would
    keep the executor's shutdown, and so the hub's exit, waiting for as long as the database hangs."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - carried to the awaiting coroutine
            error = exc
            call = lambda: settle(lambda: future.set_exception(error))  # noqa: E731
        else:
            call = lambda: settle(lambda: future.set_result(result))  # noqa: E731
        try:
            loop.call_soon_threadsafe(call)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    threading.Thread(target=run, name="cluster-leases", daemon=True).start()
    return future


@dataclass
class Coordinator:
    """One copy's share of the work, kept up to date every tick: beat, read, assign, then act on the plan.

    The database calls run in a thread, bounded by CALL_TIMEOUT_S, one at a time (while one is stuck, a tick
    counts as failed rather than stacking threads), so a slow or absent database never stalls the event
    loop. While the database is away the copy keeps running what it holds until FENCE_MARGIN_S before its
    leases could expire, then stops them all: another copy may take them at expiry, and two owners of one
    partition must never both write.
    """

    table: LeaseTable
    copy_id: str
    partitions: Callable[[], Iterable[str]]
    start: Start
    stop: Stop
    lease_ms: int = LEASE_MS
    tick_s: float = TICK_S
    running: dict[str, int] = field(default_factory=dict)
    """partition -> the epoch this copy runs it at"""
    renewed: dict[str, float] = field(default_factory=dict)
    """partition -> monotonic time of its last successful acquire or renew"""
    last_error: str | None = None
    moves: int = 0
    _pending: asyncio.Future[Any] | None = None

    async def run(self) -> None:
        """Tick until cancelled; on cancel, stop every partition and give its lease back."""
        try:
            while True:
                await self.tick()
                await asyncio.sleep(self.tick_s)
        finally:
            await self.leave()

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        """A table call in a thread, bounded in time; a timeout, or a call still stuck, is a StateError."""
        if self._pending is not None and not self._pending.done():
            raise StateError("the state database has not answered the previous call yet")
        self._pending = call = _in_thread(fn, *args)
        try:
            return await asyncio.wait_for(asyncio.shield(call), CALL_TIMEOUT_S)
        except TimeoutError:
            raise StateError(f"the state database did not answer within {CALL_TIMEOUT_S:g} s") from None

    async def tick(self) -> Plan | None:
        """One round; returns the plan acted on, or None when the database could not be read."""
        try:
            copies, leases, now_ms = await self._call(self._read)
        except StateError as exc:
            self._note_error(exc)
            await self._fence()
            return None
        desired = assign(self.partitions(), copies if self.copy_id in copies else [*copies, self.copy_id])
        moves = plan(self.copy_id, desired, leases, self.running, now_ms)
        releasing = {part: self.running[part] for part in moves.release}
        for part in moves.release:
            await self._stop(part)  # stopped (last commit, acknowledgements) before the lease is given up
        renewing = {part: self.running[part] for part in moves.renew}
        try:
            renewed, taken = await self._call(self.table.settle, self.copy_id, releasing, renewing, moves.acquire,
                                              self.lease_ms)
        except StateError as exc:
            self._note_error(exc)
            await self._fence()
            return moves
        now = time.monotonic()
        for part in renewing:
            if part in renewed:
                self.renewed[part] = now
            else:
                log.warning("cluster: %s lost the lease of %s; stopping it", self.copy_id, part)
                await self._stop(part)
        for part, epoch in taken.items():
            self.running[part] = epoch
            self.renewed[part] = now
            self.moves += 1
            log.info("cluster: %s now runs %s (epoch %d)", self.copy_id, part, epoch)
            await self.start(part, epoch)
        self.last_error = None
        return moves

    def _read(self) -> tuple[list[str], dict[str, Lease], int]:
        now_ms = self.table.beat(self.copy_id)
        return self.table.live_copies(), self.table.leases(), now_ms

    def _note_error(self, exc: Exception) -> None:
        if self.last_error is None:
            log.warning("cluster: state database unavailable: %s", exc)
        self.last_error = str(exc)

    async def _fence(self) -> None:
        """Stop every partition whose lease may lapse before we could renew it again."""
        limit = self.lease_ms / 1000 - FENCE_MARGIN_S
        now = time.monotonic()
        for part in [p for p, at in self.renewed.items() if now - at > limit]:
            log.warning("cluster: %s could not renew %s for %.1f s; stopping it before its lease lapses",
                        self.copy_id, part, now - self.renewed[part])
            await self._stop(part)

    async def _stop(self, part: str) -> None:
        self.running.pop(part, None)
        self.renewed.pop(part, None)
        await self.stop(part)

    async def leave(self) -> None:
        """A clean stop: every partition stopped and released, and this copy struck off, so the others take
        over at their next tick rather than after the leases' expiry."""
        releasing = dict(self.running)
        for part in releasing:
            await self._stop(part)

        def give_up() -> None:
            self.table.settle(self.copy_id, releasing, {}, ())
            self.table.leave(self.copy_id)

        try:
            await self._call(give_up)
        except StateError as exc:
            self._note_error(exc)  # the leases lapse by themselves
