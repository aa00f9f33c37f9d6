"""The one owner of the hub's background tasks: each is named, logged when it dies, restarted, and stopped.

A bare task that raises is noticed only when someone awaits it, which for the
hub meant at shutdown (ingest went silent meanwhile). Here every long-lived task
runs inside a keeper loop: an exception is logged with its traceback, counted,
and the task is started again after a capped exponential backoff with jitter. A
task that should run forever but returns is a failure too. One-shot tasks run
to completion once and are restarted only if they raised. `stop()` cancels in
reverse start order, bounds the wait for each task and never raises, so the
steps after it (the last flush, the outbox drain, closing files) always run.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, Literal

log = logging.getLogger(__name__)

State = Literal["running", "restarting", "done", "stopped"]
Factory = Callable[[], Coroutine[Any, Any, object]]
"""Makes a fresh coroutine for each (re)start: a coroutine object can be awaited only once."""

STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """What a supervised task is doing, for health, metrics and logs."""

    name: str
    state: State
    since: float
    """time.time() of the last state change"""
    restarts: int
    last_error: str | None
    """one line: the exception type and message of the last failure"""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before a restart: `first_s` doubling up to `max_s`, each spread by +-`jitter`; a task that ran
    `reset_after_s` without failing starts again from `first_s`."""

    first_s: float = 0.5
    max_s: float = 30.0
    reset_after_s: float = 60.0
    jitter: float = 0.2

    def delay_s(self, failures: int, rand: float) -> float:
        """The wait after the `failures`-th failure in a row (1-based); `rand` is uniform in [0, 1)."""
        base = min(self.first_s * 2 ** max(failures - 1, 0), self.max_s)
        return base * (1 - self.jitter + 2 * self.jitter * rand)


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line, short enough for a status field."""
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line[:300]


@dataclass(slots=True)
class _Slot:
    name: str
    factory: Factory
    once: bool
    status: TaskStatus
    task: asyncio.Task[None] | None = None


class Supervisor:
    """Runs named background tasks until `stop()`: restarts the ones that fail, reports on all of them."""

    def __init__(self, backoff: Backoff = Backoff(), *,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random) -> None:
        self.backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self._wall = wall
        self._rand = rand
        self._slots: dict[str, _Slot] = {}
        self._stopping = False

    def start(self, name: str, factory: Factory, *, once: bool = False) -> None:
        """Run `factory()` as the task `name` (in a running event loop) until `stop()`.

        `once=True`: it is meant to finish; it is restarted only if it raised.
        """
        if self._stopping:
            raise RuntimeError(f"cannot start task {name!r}: the supervisor is stopping")
        if name in self._slots:
            raise ValueError(f"a task named {name!r} is already supervised")
        slot = _Slot(name, factory, once, TaskStatus(name, "running", self._wall(), 0, None))
        self._slots[name] = slot
        slot.task = asyncio.get_running_loop().create_task(self._keep(slot), name=name)

    def status(self) -> dict[str, TaskStatus]:
        """Every task's status, in start order."""
        return {name: slot.status for name, slot in self._slots.items()}

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Cancel every task, newest first, waiting at most `timeout_s` for each; never raises.

        A task that swallows the first cancellation is cancelled once more halfway through its time; one
        still running after that is logged and left behind, so stopping never hangs.
        """
        self._stopping = True
        slots = list(self._slots.values())
        try:
            for slot in reversed(slots):
                try:
                    await self._stop_one(slot, timeout_s)
                except asyncio.CancelledError:
                    raise
                except Exception:  # stop must never raise: the steps after it have to run
                    log.exception("stopping task %s failed", slot.name)
        finally:
            for slot in slots:  # the stop itself was cancelled: still leave no task running
                if slot.task is not None and not slot.task.done():
                    slot.task.cancel()

    async def _stop_one(self, slot: _Slot, timeout_s: float) -> None:
        task = slot.task
        if task is None or task.done():
            return
        for _ in range(2):
            task.cancel()
            await asyncio.wait({task}, timeout=timeout_s / 2)
            if task.done():
                break
        else:
            log.error("task %s did not stop within %.1f s of being cancelled; leaving it", slot.name, timeout_s)
            return
        error = None if task.cancelled() else task.exception()  # retrieved, so asyncio does not warn later
        if error is not None:  # its cleanup raised after the cancel
            log.error("task %s ended with %s while stopping", slot.name, one_line(error))
        self._set(slot, "stopped", slot.status.last_error)

    def _set(self, slot: _Slot, state: State, error: str | None, restarted: bool = False) -> None:
        slot.status = replace(slot.status, state=state, since=self._wall(), last_error=error,
                              restarts=slot.status.restarts + restarted)

    async def _keep(self, slot: _Slot) -> None:
        """Run the task, and run it again after each failure, until cancelled by `stop()`."""
        failures = 0
        me = asyncio.current_task()
        while True:
            started = self._clock()
            try:
                await slot.factory()
            except asyncio.CancelledError as exc:
                if self._stopping or (me is not None and me.cancelling()):
                    raise
                # a cancellation nobody asked this task for (an inner future was cancelled): a failure
                log.exception("task %s was cancelled from inside; restarting it", slot.name)
                error = one_line(exc)
            except Exception as exc:  # noqa: BLE001 - the point of a supervisor
                if self._stopping:
                    raise
                log.exception("task %s failed; restarting it", slot.name)
                error = one_line(exc)
            else:
                if self._stopping:
                    return
                if slot.once:
                    self._set(slot, "done", slot.status.last_error)
                    return
                log.error("task %s returned, but it should run until stopped; restarting it", slot.name)
                error = "returned"
            failures = 1 if self._clock() - started >= self.backoff.reset_after_s else failures + 1
            delay = self.backoff.delay_s(failures, self._rand())
            self._set(slot, "restarting", error, restarted=True)
            log.warning("task %s restarts in %.1f s (restart %d)", slot.name, delay, slot.status.restarts)
            await self._sleep(delay)
            if self._stopping:
                return
            self._set(slot, "running", error)
