"""The supervisor: failed tasks are logged, counted and restarted with backoff; stop always returns."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import pytest

from hub.supervisor import Backoff, Supervisor, TaskStatus, one_line

pytestmark = pytest.mark.unit


class Sleeps:
    """An injected sleep: records each backoff and returns at once (one loop turn)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


async def until(check: object, what: str, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


def middle() -> float:
    """rand() at the middle of the jitter range: delays are the plain doubling."""
    return 0.5


async def test_a_raising_task_is_logged_counted_and_restarted_with_doubling_backoff(
        caplog: pytest.LogCaptureFixture) -> None:
    sleeps, runs, forever = Sleeps(), [], asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) <= 3:
            raise RuntimeError(f"boom {len(runs)}\nsecond line")
        await forever.wait()

    sup = Supervisor(sleep=sleeps, rand=middle)
    with caplog.at_level(logging.ERROR, logger="hub.supervisor"):
        sup.start("flaky", flaky)
        await until(lambda: len(runs) == 4, "the fourth run")
    try:
        status = sup.status()["flaky"]
        assert (status.state, status.restarts, status.last_error) == ("running", 3, "RuntimeError: boom 3 second line")
        assert sleeps.delays == [0.5, 1.0, 2.0]
        failures = [r for r in caplog.records if r.exc_info]
        assert len(failures) == 3
        assert all("flaky" in r.getMessage() for r in failures)
        assert "RuntimeError: boom 1" in caplog.text and "Traceback" in caplog.text
    finally:
        await sup.stop(timeout_s=1)
    assert sup.status()["flaky"].state == "stopped"


def test_backoff_doubles_to_its_cap_and_jitter_stays_within_its_band() -> None:
    backoff = Backoff(first_s=0.5, max_s=30.0, jitter=0.2)
    assert [backoff.delay_s(n, 0.5) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay_s(1, 0.0) == pytest.approx(0.4)
    assert backoff.delay_s(7, 0.999999) == pytest.approx(36.0, rel=1e-5)


async def test_backoff_starts_again_from_the_first_delay_after_a_long_good_run() -> None:
    sleeps, now, runs = Sleeps(), [0.0], []
    forever = asyncio.Event()

    async def task() -> None:
        runs.append(1)
        if len(runs) == 3:
            now[0] += 61.0  # this run lasted longer than reset_after_s before failing
        if len(runs) <= 3:
            raise ValueError("again")
        await forever.wait()

    sup = Supervisor(Backoff(reset_after_s=60.0), sleep=sleeps, clock=lambda: now[0], rand=middle)
    sup.start("t", task)
    await until(lambda: len(runs) == 4, "the fourth run")
    await sup.stop(timeout_s=1)
    assert sleeps.delays == [0.5, 1.0, 0.5]
    assert sup.status()["t"].restarts == 3


async def test_a_long_lived_task_that_returns_counts_as_failed_and_is_restarted() -> None:
    sleeps, runs, forever = Sleeps(), [], asyncio.Event()

    async def returns_once() -> None:
        runs.append(1)
        if len(runs) > 1:
            await forever.wait()

    sup = Supervisor(sleep=sleeps, rand=middle)
    sup.start("loop", returns_once)
    await until(lambda: len(runs) == 2, "the restart")
    status = sup.status()["loop"]
    await sup.stop(timeout_s=1)
    assert (status.state, status.restarts, status.last_error) == ("running", 1, "returned")


async def test_a_one_shot_task_that_finishes_is_done_and_not_restarted() -> None:
    sleeps, runs = Sleeps(), []

    async def once() -> None:
        runs.append(1)

    sup = Supervisor(sleep=sleeps)
    sup.start("rebuild", once, once=True)
    await until(lambda: sup.status()["rebuild"].state == "done", "done")
    for _ in range(10):
        await asyncio.sleep(0)
    assert runs == [1] and sleeps.delays == []
    assert sup.status()["rebuild"].restarts == 0
    await sup.stop(timeout_s=1)
    assert sup.status()["rebuild"].state == "done"  # stop leaves a finished task as it was


async def test_a_one_shot_task_that_raised_is_restarted_until_it_finishes() -> None:
    sleeps, runs = Sleeps(), []

    async def once() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise OSError("store away")

    sup = Supervisor(sleep=sleeps, rand=middle)
    sup.start("rebuild", once, once=True)
    await until(lambda: sup.status()["rebuild"].state == "done", "done")
    status = sup.status()["rebuild"]
    assert (len(runs), status.restarts, status.last_error) == (2, 1, "OSError: store away")
    await sup.stop(timeout_s=1)


async def test_stop_cancels_in_reverse_start_order_and_returns_despite_a_stubborn_task(
        caplog: pytest.LogCaptureFixture) -> None:
    stopped: list[str] = []
    release = asyncio.Event()

    def forever(name: str) -> object:
        async def run() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                stopped.append(name)
        return run

    async def swallows_one() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.append("swallows-one")  # ignores the first cancellation, then keeps waiting
        await asyncio.Event().wait()

    async def never_stops() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                stopped.append("never-stops")

    async def raises_on_cancel() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            raise ValueError("cleanup failed")

    sup = Supervisor()
    sup.start("first", forever("first"))  # type: ignore[arg-type]
    sup.start("never-stops", never_stops)
    sup.start("raises-on-cancel", raises_on_cancel)
    sup.start("swallows-one", swallows_one)
    sup.start("last", forever("last"))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="hub.supervisor"):
        await sup.stop(timeout_s=0.4)  # returns: it does not raise and does not hang
    took = time.monotonic() - started
    release.set()
    try:
        assert 0.35 < took < 3.0, took  # bounded: 0.2 s for the one that swallowed a cancel, 0.4 s for the stubborn one
        assert stopped[:3] == ["last", "swallows-one", "never-stops"] and stopped[-1] == "first"
        states = {name: s.state for name, s in sup.status().items()}
        assert states == {"first": "stopped", "never-stops": "running", "raises-on-cancel": "stopped",
                          "swallows-one": "stopped", "last": "stopped"}
        assert "never-stops did not stop" in caplog.text
        assert "ValueError: cleanup failed" in caplog.text
    finally:
        await asyncio.sleep(0.05)  # the stubborn task sees `release` and ends before the loop closes


async def test_a_cancellation_from_inside_is_a_failure_not_a_stop() -> None:
    sleeps, runs, forever = Sleeps(), [], asyncio.Event()

    async def awaits_a_cancelled_future() -> None:
        runs.append(1)
        if len(runs) == 1:
            inner = asyncio.get_running_loop().create_future()
            inner.cancel()
            await inner
        await forever.wait()

    sup = Supervisor(sleep=sleeps, rand=middle)
    sup.start("inner", awaits_a_cancelled_future)
    await until(lambda: len(runs) == 2, "the restart")
    assert sup.status()["inner"].restarts == 1
    await sup.stop(timeout_s=1)
    assert sup.status()["inner"].state == "stopped"


async def test_status_is_frozen_per_task_in_start_order_with_wall_clock_times() -> None:
    sleeps, forever = Sleeps(), asyncio.Event()
    gate = asyncio.Event()

    async def waits() -> None:
        await forever.wait()

    async def fails_then_waits() -> None:
        if not gate.is_set():
            gate.set()
            raise KeyError("k")
        await forever.wait()

    before = time.time()
    sup = Supervisor(sleep=sleeps, rand=middle)
    sup.start("b", waits)
    sup.start("a", fails_then_waits)
    with pytest.raises(ValueError, match="already supervised"):
        sup.start("a", waits)
    await until(lambda: sup.status()["a"].restarts == 1 and sup.status()["a"].state == "running", "a's restart")
    status = sup.status()
    assert list(status) == ["b", "a"]
    assert status["b"] == TaskStatus("b", "running", status["b"].since, 0, None)
    assert status["a"].last_error == "KeyError: 'k'"
    assert before <= status["b"].since <= status["a"].since <= time.time()
    with pytest.raises(dataclasses.FrozenInstanceError):
        status["a"].restarts = 0  # type: ignore[misc]
    await sup.stop(timeout_s=1)
    assert {s.state for s in sup.status().values()} == {"stopped"}
    with pytest.raises(RuntimeError, match="stopping"):
        sup.start("late", waits)


def test_one_line_is_short_and_names_the_type() -> None:
    assert one_line(ValueError("a\n  b")) == "ValueError: a b"
    assert one_line(asyncio.CancelledError()) == "CancelledError"
    assert len(one_line(RuntimeError("x" * 1000))) == 300
