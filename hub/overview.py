"""`GET /api/overview`: the command-center big screen's figures in one answer.

Live figures (devices online and faulted per kind, and what each kind's `overview` declares, such as
elevators in service or charging power) come from live state; today's figures are aggregated in the
store (one bucket per China day, the same query on both stores); alert counts from the alert store;
the inside count from the `InsideTracker`. Every kind-specific figure is declared by its kind
(`DeviceKind.overview`): this module only iterates the kinds. Each kind's figures are given twice: in
its own section (where the big screen's hand-made panels read them), and with its device counts under
`kinds`, one shape for every kind (where a generic tile reads them). Only counts leave it: no plate,
subject or id tag.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Any

from devices import REGISTRY
from devices.base import DeviceKind, LiveDevice, TodayFigure
from hub.alerts.store import AlertStore
from hub.inside import InsideTracker
from hub.registry import DeviceKey, Registry
from hub.screencache import ScreenCache
from hub.series import CHINA_OFFSET_MS, DAY_MS, HOUR_MS, china_day_start, register_increase
from hub.settled import SETTLE_MS, Settled, cut, read_in_two
from hub.state import LiveState
from hub.storage.base import AggregateQuery, Storage
from hub.tally import TodayTally
from hub.times import iso

SEVERITIES = ("critical", "major", "minor", "info")
QUERY_TURNS = 5
"""Event loop turns that get the store's queries under way (tasks, then threads or requests)."""
NEVER_HEARD: Mapping[str, Any] = {}


def today_figures(kinds: Mapping[str, DeviceKind]) -> dict[str, tuple[str, TodayFigure]]:
    """Every kind's figures of today: name -> (kind, figure); names are unique across kinds."""
    out: dict[str, tuple[str, TodayFigure]] = {}
    for name, kind in kinds.items():
        for figure_name, figure in (kind.overview.today.items() if kind.overview else ()):
            if figure_name in out:
                raise ValueError(f"today's figure {figure_name!r} of kind {name!r} is also {out[figure_name][0]!r}'s")
            out[figure_name] = (name, figure)
    return out


async def today_counts(storage: Storage, site: str | None, now_ms: int, settled: Settled | None = None,
                       kinds: Mapping[str, DeviceKind] = REGISTRY, tally: TodayTally | None = None) -> dict[str, float]:
    """Today's figures since China midnight: single-bucket aggregates, all sent to the store at once.

    With `settled`, the day up to a quarter of an hour ago is kept and only the rest is read again; with a
    `tally` too, the rest is taken from it as far as it reaches back (`hub.tally`), and only the minutes
    between the cut and the tally's start (a hub started within the last hour) are read from the store.
    """
    day = china_day_start(now_ms)
    extra = {"site": site} if site else {}
    figures = today_figures(kinds)

    async def part(since_ms: int, until_ms: int) -> list[float]:
        if until_ms <= since_ms:
            return [0.0] * len(figures)
        queries = [AggregateQuery(f"{kind}_event", f.aggregate, f.field, {**f.where, **extra}, since_ms, until_ms,
                                  DAY_MS, CHINA_OFFSET_MS) for kind, f in figures.values()]
        return [answer[0][1] or 0 for answer in await storage.aggregate_many(queries)]

    until = now_ms + 1
    if tally is None or settled is None or not all(tally.covers(name) for name in figures):
        earlier, recent = await read_in_two(settled, ("today", site), day, until, now_ms, HOUR_MS, part)
        return {name: e + r for name, e, r in zip(figures, earlier, recent, strict=True)}
    split = min(until, cut(now_ms, day, HOUR_MS))
    counted_from = max(split, tally.since_ms)
    earlier = await settled.get(("today", site, day, split), lambda: part(day, split))
    # Before the tally's start: read fresh while it is recent (a restarted hub stores its broker's backlog
    # first), kept once it has settled too.
    between = (await settled.get(("today", site, split, counted_from), lambda: part(split, counted_from))
               if counted_from <= now_ms - SETTLE_MS else await part(split, min(until, counted_from)))
    return {name: e + b + (tally.total(name, site, counted_from, until) if counted_from < until else 0)
            for name, e, b in zip(figures, earlier, between, strict=True)}


def device_figures(registry: Registry, live: LiveState, site: str | None, now_ms: int,
                   kinds: Mapping[str, DeviceKind] = REGISTRY,
                   alerting: Mapping[DeviceKey, Collection[str]] = NEVER_HEARD) -> dict[str, Any]:
    """Devices per kind (total, online, faulted = online with an open fault), and each kind's live figures
    (`OverviewSection.live`) by kind name; `alerting` gives each device's open alert codes."""
    devices = {kind: {"total": 0, "online": 0, "faulted": 0} for kind in kinds}
    seen: dict[str, list[LiveDevice]] = {name: [] for name, k in kinds.items() if k.overview and k.overview.live}
    states = live.devices
    for device in registry:
        if site is not None and device.site != site:
            continue
        row = devices.get(device.kind)
        if row is None:
            continue
        row["total"] += 1
        state = states.get(device.key)
        online = state is not None and state.online(now_ms, live.heartbeat_for(device))
        faulted = online and bool(state.open_faults)  # type: ignore[union-attr]
        row["online"] += online
        row["faulted"] += faulted
        listed = seen.get(device.kind)
        if listed is not None:
            codes = alerting.get(device.key, ())
            listed.append(LiveDevice(online, faulted, NEVER_HEARD, (), codes) if state is None else
                            LiveDevice(online, faulted, state.telemetry, state.open_faults.keys(), codes))
    sites = [s for name, s in registry.sites.items() if site is None or name == site]
    figures = {name: kinds[name].overview.live(listed, sites) for name, listed in seen.items()}  # type: ignore[union-attr]
    return {"devices": devices, "live": figures}


def alert_figures(store: AlertStore, site: str | None) -> dict[str, dict[str, int]]:
    """Open and acknowledged alerts by severity, every severity listed."""
    counted = store.count_active(site)
    return {state: {s: counted.get((state, s), 0) for s in SEVERITIES} for state in ("open", "acknowledged")}


def kind_figures(kinds: Mapping[str, DeviceKind], live_figures: Mapping[str, dict[str, Any]],
                 today: Mapping[str, float], inside: int, use: Mapping[str, float] = NEVER_HEARD
                 ) -> dict[str, dict[str, Any]]:
    """Each kind's declared figures by kind name (live, then today's, today's use, then the inside count); {}
    without any."""
    out: dict[str, dict[str, Any]] = {}
    for name, kind in kinds.items():
        section = kind.overview
        figures: dict[str, Any] = dict(live_figures.get(name, {}))
        for figure_name, figure in (section.today.items() if section else ()):
            value = today[figure_name]
            figures[figure_name] = int(value) if figure.digits is None else round(value, figure.digits)
        for figure_name in (section.today_use if section else ()):
            figures[figure_name] = use[figure_name]
        if section is not None and section.inside is not None:
            figures[section.inside] = inside
        out[name] = figures
    return out


def kind_sections(kinds: Mapping[str, DeviceKind], figures: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The kinds' own parts of the answer, as each declares it: a section under its key, or at the top level."""
    out: dict[str, Any] = {}
    for name, kind in kinds.items():
        section = kind.overview
        if section is None:
            continue
        if section.key is None:
            out.update(figures[name])
        else:
            out[section.key] = figures[name]
    return out


def kind_summaries(devices: Mapping[str, Mapping[str, int]],
                   figures: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every kind alike (`kinds`): its device counts and its declared figures, so that a screen can draw a kind
    it has no panel of its own for from this alone."""
    return {name: {**counts, "figures": figures[name]} for name, counts in devices.items()}


async def today_use(storage: Storage, site: str | None, now_ms: int, kinds: Mapping[str, DeviceKind] = REGISTRY,
                    slow: ScreenCache | None = None) -> dict[str, float]:
    """Every kind's `today_use` figures: its register series summed since China midnight (`hub.series`), read
    at most once per `slow`'s time to live (a reading of every meter today costs the store a scan)."""
    wanted = [(name, series, value) for kind in kinds.values() if kind.overview
              for name, (series, value) in kind.overview.today_use.items()]
    if not wanted:
        return {}

    async def read() -> dict[str, float]:
        answers = await asyncio.gather(*(register_increase(storage, site, None, value, 1, DAY_MS, series, kinds)
                                         for _, series, value in wanted))
        return {name: answer["values"][-1][1] if answer["values"] else 0.0
                for (name, _, _), answer in zip(wanted, answers, strict=True)}

    return await (slow.get(("today_use", site, china_day_start(now_ms)), read) if slow else read())


async def overview(storage: Storage, registry: Registry, live: LiveState, alerts: AlertStore,
                   inside: InsideTracker, site: str | None, now_ms: int,
                   settled: Settled | None = None, kinds: Mapping[str, DeviceKind] = REGISTRY,
                   tally: TodayTally | None = None, slow: ScreenCache | None = None) -> dict[str, Any]:
    """The whole answer of `GET /api/overview` (its shape is what the big screen is written against)."""
    # The store works (its threads, or InfluxDB) while this thread counts 10,000 devices (~15 ms):
    # a few turns of the event loop send the queries off first.
    counting = asyncio.ensure_future(today_counts(storage, site, now_ms, settled, kinds, tally))
    using = asyncio.ensure_future(today_use(storage, site, now_ms, kinds, slow))
    for _ in range(QUERY_TURNS):
        await asyncio.sleep(0)
    try:
        figures = device_figures(registry, live, site, now_ms, kinds, alerts.active_codes(site))
        alert_counts = alert_figures(alerts, site)
    except BaseException:
        counting.cancel()
        using.cancel()
        raise
    today, use = await asyncio.gather(counting, using)
    declared = kind_figures(kinds, figures["live"], today, inside.count(site, now_ms), use)
    return {"time": iso(now_ms), "site": site, "devices": figures["devices"], "alerts": alert_counts,
            **kind_sections(kinds, declared), "kinds": kind_summaries(figures["devices"], declared)}
