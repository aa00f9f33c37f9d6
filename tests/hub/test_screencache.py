"""The big screen's answer cache: shared within its time to live, refreshed in the background, no error kept."""

from __future__ import annotations

import asyncio

import pytest

from hub.screencache import ScreenCache

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_answers_are_shared_within_the_ttl_and_computed_again_after() -> None:
    clock, calls = Clock(), []

    async def compute() -> int:
        calls.append(clock.now)
        return len(calls)

    cache = ScreenCache(2.0, clock)
    assert [await cache.get("k", compute), await cache.get("k", compute)] == [1, 1]
    assert await cache.get("other", compute) == 2
    clock.now += 2.0
    assert await cache.get("k", compute) == 1  # the previous answer at once, while a new one is computed
    await asyncio.sleep(0)
    assert await cache.get("k", compute) == 3
    assert calls == [100.0, 100.0, 102.0]


async def test_a_failed_refresh_keeps_the_previous_answer_is_counted_and_tried_again(
        caplog: pytest.LogCaptureFixture) -> None:
    clock, results = Clock(), iter([1, RuntimeError("store away"), 3])

    async def compute() -> int:
        result = next(results)
        if isinstance(result, Exception):
            raise result
        return result

    cache = ScreenCache(2.0, clock)
    assert await cache.get("k", compute) == 1
    clock.now += 2.0
    assert await cache.get("k", compute) == 1  # refresh started (and fails)
    for _ in range(3):
        await asyncio.sleep(0)
    assert await cache.get("k", compute) == 1  # still the old answer; a new try started
    assert cache.failures == 1
    assert "not refreshed" in caplog.text and "Traceback" in caplog.text and "store away" in caplog.text
    for _ in range(3):
        await asyncio.sleep(0)
    assert await cache.get("k", compute) == 3
    assert cache.failures == 1


async def test_concurrent_requests_share_one_computation() -> None:
    started = 0

    async def slow() -> str:
        nonlocal started
        started += 1
        await asyncio.sleep(0.01)
        return "answer"

    cache = ScreenCache(2.0)
    assert await asyncio.gather(*(cache.get("k", slow) for _ in range(5))) == ["answer"] * 5
    assert started == 1


async def test_an_error_is_not_kept_and_zero_turns_it_off() -> None:
    attempts = 0

    async def flaky() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("store away")
        return attempts

    cache = ScreenCache(2.0)
    with pytest.raises(RuntimeError):
        await cache.get("k", flaky)
    assert await cache.get("k", flaky) == 2
    off, n = ScreenCache(0), iter(range(10))

    async def counter() -> int:
        return next(n)

    assert [await off.get("k", counter) for _ in range(3)] == [0, 1, 2]
