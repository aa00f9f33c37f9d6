"""Aggregates over time that has passed, kept so each refresh of a screen reads only the recent part.

Today's counts and the 24-hour charging curve are sums over buckets; the buckets that ended a while
ago hardly change, so a refresh every few seconds need not read them again. Points can still arrive
late (a device's own buffer, the outbox catching up after a store outage), so a kept part is
computed again once it is `recheck_s` old. Counts and sums add across disjoint time ranges, and
bucketed means stay exact when the cut falls on a bucket boundary, so the answers do not change.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

SETTLE_MS = 15 * 60_000
"""Data older than this is taken as complete (device lag is seconds; outages are covered by recheck_s)."""
RECHECK_S = 600.0
MAX_KEYS = 1_000


def cut(now_ms: int, start_ms: int, step_ms: int, settle_ms: int = SETTLE_MS) -> int:
    """The boundary (a multiple of `step_ms` after `start_ms`, never before it) up to which data is settled."""
    return max(start_ms, start_ms + (now_ms - settle_ms - start_ms) // step_ms * step_ms)


class Settled:
    """The settled part of an aggregate, by key; a key names the range, so a moved cut computes anew."""

    def __init__(self, recheck_s: float = RECHECK_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.recheck_s = recheck_s
        self.clock = clock
        self._kept: dict[Hashable, tuple[float, Any]] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        kept = self._kept.get(key)
        if kept is not None and self.clock() - kept[0] < self.recheck_s:
            return kept[1]
        value = await compute()
        if len(self._kept) >= MAX_KEYS:
            self._kept.clear()
        self._kept[key] = (self.clock(), value)
        return value

    def clear(self) -> None:
        self._kept.clear()


async def read_in_two(settled: Settled | None, key: tuple[Hashable, ...], start_ms: int, until_ms: int, now_ms: int,
                      step_ms: int, read: Callable[[int, int], Awaitable[T]]) -> tuple[T, T]:
    """`read(start, until)` as two parts, the earlier settled one kept by `settled`, the rest read now.

    The cut falls on a `step_ms` boundary after `start_ms`. Without `settled` everything is read now (the
    earlier part is the empty range). `read` must answer an empty range with an empty part.
    """
    if settled is None:
        return await read(start_ms, start_ms), await read(start_ms, until_ms)
    split = min(until_ms, cut(now_ms, start_ms, step_ms))
    earlier = await settled.get((*key, start_ms, split), lambda: read(start_ms, split))
    return earlier, await read(split, until_ms)
