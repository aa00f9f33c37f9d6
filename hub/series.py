"""Time series for the command-center charts, aggregated in the store (InfluxQL GROUP BY time()).

Days are China days (midnight UTC+8); every series lists every bucket, so a
chart needs no gap handling.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from devices import REGISTRY
from devices.base import CountSeries, DeviceKind, RegisterIncrease, Series, SumOfMeans
from hub.alerts.store import AlertStore
from hub.registry import Registry
from hub.settled import Settled, read_in_two
from hub.storage.base import INCREASE_LOOKBACK_MS, AggregateQuery, Storage, buckets
from hub.times import iso

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
CHINA_OFFSET_MS = -8 * HOUR_MS
"""Bucket offset that starts days at midnight in China (UTC+8)."""


def china_day_start(now_ms: int) -> int:
    return (now_ms - CHINA_OFFSET_MS) // DAY_MS * DAY_MS + CHINA_OFFSET_MS


def declared(name: str, kinds: Mapping[str, DeviceKind] = REGISTRY) -> tuple[str, Series]:
    """The kind that declares the series `name` (`DeviceKind.series`), and the declaration; KeyError if none."""
    for kind_name, kind in kinds.items():
        if name in kind.series:
            return kind_name, kind.series[name]
    raise KeyError(f"no kind declares the series {name!r}")


async def counts_per_hour(storage: Storage, site: str | None, day_start_ms: int, settled: Settled | None,
                          name: str, kinds: Mapping[str, DeviceKind] = REGISTRY) -> dict[str, Any]:
    """A `CountSeries`: events per hour over one China day, a series per value (with `settled`, past hours are
    read once)."""
    kind, spec = declared(name, kinds)
    assert isinstance(spec, CountSeries)
    where = {"type": spec.event, **({"site": site} if site else {})}

    async def hours(since_ms: int, until_ms: int) -> list[list[tuple[int, float | None]]]:
        if until_ms <= since_ms:
            return [[] for _ in spec.values]
        return await storage.aggregate_many([  # one request, one pass over the events
            AggregateQuery(f"{kind}_event", "count", spec.field, {**where, spec.split: v}, since_ms, until_ms,
                           HOUR_MS) for v in spec.values])

    earlier, recent = await read_in_two(settled, (name, site), day_start_ms, day_start_ms + DAY_MS,
                                        int(time.time() * 1000), HOUR_MS, hours)
    counts = [e + r for e, r in zip(earlier, recent, strict=True)]
    return {"since": iso(day_start_ms), "every_s": 3600,
            **{v: [[iso(t), n] for t, n in c] for v, c in zip(spec.values, counts, strict=True)}}


async def traffic(storage: Storage, site: str | None, day_start_ms: int,
                  settled: Settled | None = None, kinds: Mapping[str, DeviceKind] = REGISTRY) -> dict[str, Any]:
    """Vehicles in and out per hour over one China day (the `traffic` series its kind declares)."""
    return await counts_per_hour(storage, site, day_start_ms, settled, "traffic", kinds)


async def sum_of_means(storage: Storage, registry: Registry, site: str | None, hours: int, every_ms: int,
                       settled: Settled | None, name: str,
                       kinds: Mapping[str, DeviceKind] = REGISTRY) -> dict[str, Any]:
    """A `SumOfMeans` per bucket: each registered device's mean over the bucket, summed.

    One grouped query for all devices (per-device queries cost a round trip each: 1,000 of them at scale).
    With `settled`, buckets that ended a quarter of an hour ago are kept and only the newer ones are read.
    """
    kind, spec = declared(name, kinds)
    assert isinstance(spec, SumOfMeans)
    now_ms = int(time.time() * 1000)
    since = (now_ms - hours * HOUR_MS) // every_ms * every_ms
    devices = [d for d in registry if d.kind == kind and (site is None or d.site == site)]

    async def totals(since_ms: int, until_ms: int) -> list[float]:
        if until_ms <= since_ms:
            return []
        per_device = await storage.aggregate_by(kind, "mean", spec.field, {"site": site} if site else {},
                                                 since_ms, until_ms, every_ms, ("site", "device"))
        columns = [[kw or 0.0 for _, kw in per_device[key]] for key in ((d.site, d.device) for d in devices)
                   if key in per_device]
        # Summed in registry order, so the floats come out exactly as they always have.
        return ([sum(bucket) for bucket in zip(*columns, strict=True)] if columns
                else [0.0] * len(buckets(since_ms, until_ms, every_ms)))

    earlier, recent = await read_in_two(settled, (name, site, every_ms, len(devices)), since, now_ms, now_ms,
                                        every_ms, totals)
    total = earlier + recent
    times = buckets(since, now_ms, every_ms)
    return {"since": iso(since), "every_s": every_ms // 1000, spec.count_key: len(devices),
            spec.value_key: [[iso(t), round(kw, spec.digits)] for t, kw in zip(times, total, strict=True)]}


CHARGING_POWER = "charging_power"


async def charging_power(storage: Storage, registry: Registry, site: str | None, hours: int,
                         every_ms: int, settled: Settled | None = None,
                         kinds: Mapping[str, DeviceKind] = REGISTRY) -> dict[str, Any]:
    """Total charging power (kW) per bucket (the `charging_power` series its kind declares)."""
    return await sum_of_means(storage, registry, site, hours, every_ms, settled, CHARGING_POWER, kinds)


CONSUMPTION = "consumption"
RESETS_MAX = 1000
"""Register resets looked at in one answer: a replaced meter is a rare event (a few a month on an estate)."""


async def register_increase(storage: Storage, site: str | None, building: str | None, value: str, days: int,
                            every_ms: int, name: str, kinds: Mapping[str, DeviceKind] = REGISTRY) -> dict[str, Any]:
    """A `RegisterIncrease` per hour or China day over the last `days` (today included), for one value of its
    split (water, say), at a site or one building (a registry tag on the readings).

    The store sums each register's steps (`Storage.increase`), a step down counting nothing. Each reset event in
    range then puts back what that dropped: (the old register's last value - the reading before the reset)
    + (the first reading after it - the new register's first value), in the bucket of the reading after it;
    both readings are found as a max before and a min after (a register only grows between resets). A reset
    whose readings are not found (another building, none within a day) adds nothing; no bucket goes negative.
    """
    kind, spec = declared(name, kinds)
    assert isinstance(spec, RegisterIncrease)
    now_ms = int(time.time() * 1000)
    since = china_day_start(now_ms) - (days - 1) * DAY_MS
    until = now_ms + 1  # a reading taken this millisecond counts
    where = {**({"site": site} if site else {}), **({"building": building} if building is not None else {}),
             spec.split: value}
    totals = await storage.increase(kind, spec.field, where, since, until, every_ms, CHINA_OFFSET_MS)
    extra = await _reset_corrections(storage, kind, spec, where, since, until, every_ms)
    values = [(t, max(0.0, (v or 0.0) + extra.get(t, 0.0))) for t, v in totals]
    return {"since": iso(since), "every_s": every_ms // 1000, spec.split: value, "unit": spec.units[value],
            "values": [[iso(t), round(v, spec.digits)] for t, v in values]}


async def _reset_corrections(storage: Storage, kind: str, spec: RegisterIncrease, where: dict[str, str],
                             since: int, until: int, every_ms: int) -> dict[int, float]:
    """Per bucket, what the reset events in range add back (see `register_increase`); two aggregates per reset,
    all sent at once."""
    look_from = since - INCREASE_LOOKBACK_MS  # the window the store looked into for the steps
    resets = await storage.query_points([f"{kind}_event"], {"type": spec.reset_event,
                                                            **({"site": where["site"]} if "site" in where else {})},
                                        look_from, until - 1, RESETS_MAX)
    queries = []
    for _, at, columns in resets:
        one = {**where, "site": columns["site"], "device": columns["device"]}
        queries += [AggregateQuery(kind, "max", spec.field, one, look_from, at, DAY_MS),
                    AggregateQuery(kind, "min", spec.field, one, at, until, every_ms, CHINA_OFFSET_MS)]
    answers = await storage.aggregate_many(queries)
    extra: dict[int, float] = defaultdict(float)
    for i, (_, _, columns) in enumerate(resets):
        before = [v for _, v in answers[2 * i] if v is not None]
        after = [(t, v) for t, v in answers[2 * i + 1] if v is not None]
        if not after or after[0][0] < since:
            continue
        bucket, first = after[0]
        last = before[-1] if before else None
        counted = max(0.0, first - last) if last is not None else 0.0
        owed = max(0.0, columns[spec.reset_from] - last) if last is not None else 0.0
        extra[bucket] += owed + max(0.0, first - columns[spec.reset_to]) - counted
    return extra


async def consumption(storage: Storage, site: str | None, building: str | None, utility: str, days: int,
                      every_ms: int, kinds: Mapping[str, DeviceKind] = REGISTRY) -> dict[str, Any]:
    """Water or electricity used per hour or day (the `consumption` series its kind declares)."""
    return await register_increase(storage, site, building, utility, days, every_ms, CONSUMPTION, kinds)


def alerts_per_day(store: AlertStore, site: str | None, days: int) -> dict[str, Any]:
    """Alerts opened per China day over the last `days`, by severity."""
    now_ms = int(time.time() * 1000)
    since = china_day_start(now_ms) - (days - 1) * DAY_MS
    counted: Counter[tuple[int, str]] = Counter()
    for opened_ms, severity in store.opened_since(since, site):  # two columns, not 10,000 alerts decoded
        counted[((opened_ms - CHINA_OFFSET_MS) // DAY_MS * DAY_MS + CHINA_OFFSET_MS, severity)] += 1
    days_list = buckets(since, now_ms, DAY_MS, CHINA_OFFSET_MS)
    return {"since": iso(since), "every_s": 86400, "days": [
        {"day": iso(d), **{s: counted[(d, s)] for s in ("critical", "major", "minor", "info")}} for d in days_list]}
