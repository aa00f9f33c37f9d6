"""Answers of the big screen's read-only endpoints, kept for a second or two.

Every wall screen and browser tab polls the same few figures; at 10,000 devices
one uncached `/api/overview` reads tens of thousands of stored points (see
bench/overview.py). So identical requests share one answer for `ttl_s`; after
that the next request starts a new computation and, while it runs, every request
still gets the previous answer. No screen ever waits, except for the very first
answer, and none is older than `ttl_s` plus one computation. `ttl_s = 0` turns
it off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MAX_KEYS = 1_000
"""Distinct requests kept (sites x endpoints x parameters); beyond it the cache starts afresh."""


@dataclass(slots=True)
class _Entry:
    started: float
    running: asyncio.Future[Any]
    last: tuple[Any] | None = None
    """The latest answer, once one has come."""


class ScreenCache:
    """A time-to-live cache of awaited answers, keyed by request, refreshed behind the callers' backs."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: dict[Hashable, _Entry] = {}
        self.failures = 0
        """computations that raised (in the background or not), for /metrics"""

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        """The answer for `key`: kept, refreshed in the background once older than `ttl_s`, or computed now.

        An error reaches the callers who waited for that computation; it is never kept.
        """
        if self.ttl_s <= 0:
            return await compute()
        now = self.clock()
        entry = self._entries.get(key)
        if entry is None or (now - entry.started >= self.ttl_s and entry.running.done()):
            if len(self._entries) >= MAX_KEYS:
                self._entries.clear()
            entry = self._start(key, compute, now, _latest(entry))
        elif entry.running.done() and not _succeeded(entry.running) and entry.last is None:
            entry = self._start(key, compute, now, None)  # the last try failed and there is nothing to show
        if entry.last is not None and not (entry.running.done() and _succeeded(entry.running)):
            return entry.last[0]  # being refreshed (or the refresh failed): the previous answer
        return await asyncio.shield(entry.running)

    def _start(self, key: Hashable, compute: Callable[[], Awaitable[Any]], now: float,
               last: tuple[Any] | None) -> _Entry:
        entry = self._entries[key] = _Entry(now, asyncio.ensure_future(compute()), last)

        def done(future: asyncio.Future[Any]) -> None:
            if future.cancelled():
                return
            if (error := future.exception()) is not None:  # retrieved here, so a background failure is logged once
                self.failures += 1
                log.warning("screen answer %r not refreshed: %s", key, error, exc_info=error)
                entry.started = float("-inf")  # the next request tries again
                return
            entry.last = (future.result(),)

        entry.running.add_done_callback(done)
        return entry


def _succeeded(future: asyncio.Future[Any]) -> bool:
    return not future.cancelled() and future.exception() is None


def _latest(entry: _Entry | None) -> tuple[Any] | None:
    """The newest answer of an entry, even if its done callback has not run yet."""
    if entry is None:
        return None
    if entry.running.done() and _succeeded(entry.running):
        return (entry.running.result(),)
    return entry.last
