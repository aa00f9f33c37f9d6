"""Answers of the big screen's read-only endpoints, kept for a second or two.

Every wall screen and browser tab polls the same few figures; at 10,000 devices
one uncached `/api/overview` reads tens of thousands of stored points (see
bench/overview.py), so identical requests within `ttl_s` share one answer, and
concurrent identical requests share one computation. `ttl_s = 0` turns it off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

MAX_KEYS = 1_000
"""Distinct requests kept (sites x endpoints x parameters); beyond it the cache starts afresh."""


class ScreenCache:
    """A time-to-live cache of awaited answers, keyed by request."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._answers: dict[Hashable, tuple[float, asyncio.Future[Any]]] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        """The answer for `key` if computed (or being computed) within `ttl_s`, else `await compute()`.

        A failed computation is not kept: the next request tries again.
        """
        if self.ttl_s <= 0:
            return await compute()
        now = self.clock()
        kept = self._answers.get(key)
        if kept is not None and now - kept[0] < self.ttl_s and _usable(kept[1]):
            return await asyncio.shield(kept[1])
        if len(self._answers) >= MAX_KEYS:
            self._answers.clear()
        future: asyncio.Future[Any] = asyncio.ensure_future(compute())
        self._answers[key] = (now, future)
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no "never retrieved" log
        return await asyncio.shield(future)


def _usable(future: asyncio.Future[Any]) -> bool:
    """Still running, or done with an answer (not an error)."""
    return not future.done() or (not future.cancelled() and future.exception() is None)
