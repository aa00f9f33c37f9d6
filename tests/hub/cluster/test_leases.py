"""Leases on both state databases: taken once, fenced by epoch, judged by the database's clock; and copies
sharing partitions through them, taking a dead copy's work and fencing themselves when the database is gone."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.cluster import leases as leases_mod
from hub.cluster.leases import Coordinator, LeaseTable, open_table
from hub.statedb import Tx
from tests.support.pg_fixtures import start_postgres

pytestmark = [pytest.mark.integration, pytest.mark.services]

PARTS = [f"site-{i}" for i in range(6)]


@pytest.fixture
def tables(state_url: str | None, tmp_path: Path) -> Iterator[tuple[LeaseTable, LeaseTable]]:
    """Two copies' tables: two connections to one database (one SQLite file, or one PostgreSQL database)."""
    a, b = open_table(state_url, tmp_path / "cluster.db"), open_table(state_url, tmp_path / "cluster.db")
    yield a, b
    a.db.close()
    b.db.close()


def test_a_lease_is_held_by_one_copy_and_every_taking_moves_the_epoch(tables: tuple[LeaseTable, LeaseTable]) -> None:
    a, b = tables
    assert a.acquire("s1", "a", 5_000) == 1
    assert b.acquire("s1", "b", 5_000) is None  # held and live: refused
    assert a.acquire("s1", "a", 5_000) == 2  # ours again (a restart): a new epoch fences the old run
    assert not a.renew("s1", "a", 1)
    assert a.renew("s1", "a", 2)
    a.release("s1", "a", 2)
    assert b.acquire("s1", "b", 5_000) == 3
    assert not a.renew("s1", "a", 2)
    assert {k: (v.owner, v.epoch) for k, v in a.leases().items()} == {"s1": ("b", 3)}


def test_an_expired_lease_can_be_taken_and_its_old_holder_is_fenced(tables: tuple[LeaseTable, LeaseTable]) -> None:
    a, b = tables
    assert a.acquire("s1", "a", 300) == 1
    time.sleep(0.4)
    assert b.acquire("s1", "b", 5_000) == 2
    assert not a.renew("s1", "a", 1)

    def holds(table: LeaseTable, owner: str, epoch: int) -> bool:
        return table.db.transact(lambda tx: table.holds(tx, "s1", owner, epoch))

    assert not holds(a, "a", 1)
    assert holds(b, "b", 2)


def test_copies_are_live_while_they_beat(tables: tuple[LeaseTable, LeaseTable]) -> None:
    a, b = tables
    a.beat("a")
    b.beat("b")
    assert a.live_copies(5_000) == ["a", "b"]
    time.sleep(0.3)
    a.beat("a")
    assert a.live_copies(200) == ["a"]
    a.leave("a")
    assert b.live_copies(5_000) == ["b"]


def freeze(postmaster: int) -> list[int]:
    """SIGSTOP the postmaster and its backends (a session's backend answers while only the postmaster is
    stopped): a database that hangs, connections open. Returns the pids, to thaw them."""
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
    pids = [postmaster, *map(int, children)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    return pids


class Runs:
    """What each copy runs, as its start/stop callbacks saw it; and whether two ever ran one partition."""

    def __init__(self) -> None:
        self.running: dict[str, set[str]] = {}
        self.overlaps: list[str] = []

    def callbacks(self, copy: str) -> tuple:  # type: ignore[type-arg]
        mine = self.running.setdefault(copy, set())

        async def start(part: str, epoch: int) -> None:
            if any(part in parts for other, parts in self.running.items() if other != copy):
                self.overlaps.append(part)
            mine.add(part)

        async def stop(part: str) -> None:
            mine.discard(part)

        return start, stop


def coordinator(table: LeaseTable, copy: str, runs: Runs, lease_ms: int = 2_500) -> Coordinator:
    start, stop = runs.callbacks(copy)
    return Coordinator(table, copy, lambda: PARTS, start, stop, lease_ms=lease_ms, tick_s=0.2)


async def settle(*copies: Coordinator, rounds: int = 4) -> None:
    for _ in range(rounds):
        for c in copies:
            await c.tick()


def test_copies_split_the_work_take_a_dead_copys_share_and_rebalance_on_a_join(
        state_url: str | None, tmp_path: Path) -> None:
    runs = Runs()
    path = tmp_path / "cluster.db"
    ta, tb, tc = (open_table(state_url, path) for _ in range(3))

    async def scenario() -> None:
        a, b = coordinator(ta, "a", runs), coordinator(tb, "b", runs)
        await settle(a, b)
        assert runs.running["a"] | runs.running["b"] == set(PARTS)
        assert len(runs.running["a"]) == len(runs.running["b"]) == 3
        held_by_b = {p: b.running[p] for p in runs.running["b"]}

        # b dies: no leave, no more ticks. a takes its partitions once b is no longer seen and its leases lapse.
        runs.running.pop("b")
        started = time.monotonic()
        while runs.running["a"] != set(PARTS):
            await a.tick()
            await asyncio.sleep(0.2)
            assert time.monotonic() - started < 10
        took_s = time.monotonic() - started
        assert took_s < (leases_mod.COPY_SEEN_MS + 2_500) / 1000 + 1.5
        assert all(ta.leases()[p].epoch > epoch for p, epoch in held_by_b.items())  # b is fenced off

        # a new copy joins: it gets half, a gives them up first, nobody runs a partition twice.
        c = coordinator(tc, "c", runs)
        await settle(a, c, rounds=6)
        assert len(runs.running["a"]) == len(runs.running["c"]) == 3
        assert runs.running["a"].isdisjoint(runs.running["c"])
        assert runs.overlaps == []

        # a clean stop hands over at once.
        await a.leave()
        await settle(c, rounds=2)
        assert runs.running["c"] == set(PARTS)

    try:
        asyncio.run(scenario())
    finally:
        for t in (ta, tb, tc):
            t.db.close()


@pytest.mark.parametrize("fault", ["stopped", "hung"])
def test_a_copy_that_cannot_reach_the_database_stops_its_partitions_before_its_leases_lapse(
        fault: str, tmp_path: Path) -> None:
    server = start_postgres()
    runs = Runs()
    frozen: list[int] = []
    try:
        table = open_table(server.create_database("fence"), tmp_path / "unused.db")
        lease_ms = 3_000
        a = coordinator(table, "a", runs, lease_ms=lease_ms)

        async def scenario() -> float:
            await settle(a, rounds=2)
            assert runs.running["a"] == set(PARTS)
            last_renewal = time.monotonic()
            if fault == "stopped":
                server.stop()  # connections refused: renewals fail at once
            else:
                frozen.extend(freeze(server.service.proc.pid))  # renewals hang: bounded by CALL_TIMEOUT_S
            while runs.running["a"]:
                await a.tick()
                await asyncio.sleep(0.1)
                assert time.monotonic() - last_renewal < lease_ms / 1000, "still running past the lease"
            return time.monotonic() - last_renewal

        fenced_after = asyncio.run(scenario())
        assert fenced_after >= lease_ms / 1000 - leases_mod.FENCE_MARGIN_S - 0.5
        assert a.last_error is not None
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        server.close()


def test_a_write_fenced_by_the_lease_is_refused_after_a_takeover(tables: tuple[LeaseTable, LeaseTable]) -> None:
    a, b = tables
    a.db.execute("CREATE TABLE IF NOT EXISTS facts (part TEXT, value TEXT)")
    epoch = a.acquire("s1", "a", 300)
    assert epoch is not None

    def write(table: LeaseTable, owner: str, at: int, value: str) -> bool:
        def work(tx: Tx) -> bool:
            if not table.holds(tx, "s1", owner, at):
                return False
            tx.execute("INSERT INTO facts (part, value) VALUES (?, ?)", ("s1", value))
            return True
        return table.db.transact(work)

    assert write(a, "a", epoch, "first")
    time.sleep(0.4)
    taken = b.acquire("s1", "b", 5_000)
    assert taken is not None
    assert not write(a, "a", epoch, "stale")  # the old owner, woken from a pause, writes nothing
    assert write(b, "b", taken, "second")
    assert [r[0] for r in a.db.query("SELECT value FROM facts ORDER BY value")] == ["first", "second"]
