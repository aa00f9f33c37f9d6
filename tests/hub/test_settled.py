"""Keeping the settled part of today's counts and of the charging curve changes no answer, on both stores;
a late point in a kept part shows once the part is re-checked."""

from __future__ import annotations

import time

import pytest

from devices.base import Point
from hub.overview import today_counts
from hub.registry import Device, Registry
from hub.series import HOUR_MS, charging_power, china_day_start, traffic
from hub.settled import SETTLE_MS, Settled, cut
from hub.storage.base import Storage

pytestmark = [pytest.mark.integration, pytest.mark.services]


def passage(t: int, direction: str) -> Point:
    return Point("gate_event", {"site": "s", "device": "g1", "type": "passage"},
                 {"plate": f"琼A{t % 100000:05d}", "direction": direction, "id": f"p{t}{direction}"}, t)


async def test_today_counts_are_the_same_with_a_kept_part(storage: Storage) -> None:
    now = int(time.time() * 1000)
    day = china_day_start(now)
    times = [day + (now - day) * i // 40 for i in range(40)]  # spread over today, some in the kept part
    await storage.write([passage(t, "in" if i % 3 else "out") for i, t in enumerate(times)])
    settled = Settled()
    plain = await today_counts(storage, "s", now)
    assert plain["in_today"] == sum(1 for i in range(40) if i % 3) and plain["out_today"] == 14
    assert await today_counts(storage, "s", now, settled) == plain
    assert await today_counts(storage, "s", now, settled) == plain  # the kept part, again

    split = cut(now, day, HOUR_MS)
    if split > day:  # a late passage in the kept part: hidden until the part is checked again
        await storage.write([passage(day + 1, "in")])
        assert (await today_counts(storage, "s", now, settled))["in_today"] == plain["in_today"]
        settled.recheck_s = 0
        assert (await today_counts(storage, "s", now, settled))["in_today"] == plain["in_today"] + 1


async def test_the_charging_curve_is_the_same_with_kept_buckets(storage: Storage) -> None:
    now = int(time.time() * 1000)
    every = 15 * 60_000
    points = [Point("charger", {"site": "s", "device": d}, {"power_kw": float(k % 7 + j), "status": "charging"},
                    now - k * 5 * 60_000 - j * 1000)
              for k in range(12 * 6) for j, d in enumerate(("ev-1", "ev-2"))]  # 6 hours, every 5 minutes
    await storage.write(points)
    registry = Registry(devices=[Device(site="s", kind="charger", device=d) for d in ("ev-1", "ev-2", "ev-3")])
    plain = await charging_power(storage, registry, "s", 6, every)
    assert max(kw for _, kw in plain["kw"]) > 0 and len(plain["kw"]) == len({t for t, _ in plain["kw"]})
    settled = Settled()
    assert await charging_power(storage, registry, "s", 6, every, settled) == plain
    assert await charging_power(storage, registry, "s", 6, every, settled) == plain
    assert cut(now, now - 6 * HOUR_MS, every) <= now - SETTLE_MS  # something was kept


async def test_hourly_traffic_is_the_same_with_kept_hours(storage: Storage) -> None:
    now = int(time.time() * 1000)
    day = china_day_start(now)
    times = [day - HOUR_MS * 20 + (now - day + HOUR_MS * 20) * i // 60 for i in range(60)]  # yesterday and today
    await storage.write([passage(t, "in" if i % 2 else "out") for i, t in enumerate(times)])
    for start in (day, day - 24 * HOUR_MS):  # today (partly kept) and yesterday (all kept)
        plain = await traffic(storage, "s", start)
        expected = sum(1 for t in times if start <= t < start + 24 * HOUR_MS)
        assert sum(n for _, n in plain["in"]) + sum(n for _, n in plain["out"]) == expected
        assert expected > 0 or start == day  # just after midnight today may have none yet
        settled = Settled()
        assert await traffic(storage, "s", start, settled) == plain
        assert await traffic(storage, "s", start, settled) == plain
