"""`GET /api/overview`: the command-center big screen's figures in one answer.

Live figures (devices online and faulted, elevators in service, charging power)
come from live state; today's counts are aggregated in the store (one bucket per
China day, the same query on both stores); alert counts from the alert store;
vehicles inside from the `InsideTracker`. Only counts leave this module: no
plate, subject or id tag.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hub.alerts.store import AlertStore
from hub.inside import InsideTracker
from hub.registry import Registry
from hub.series import CHINA_OFFSET_MS, DAY_MS, HOUR_MS, china_day_start
from hub.settled import Settled, read_in_two
from hub.state import LiveState
from hub.storage.base import Aggregate, AggregateQuery, Storage
from hub.times import iso

KINDS = ("gate", "access", "camera", "elevator", "charger")
SEVERITIES = ("critical", "major", "minor", "info")
QUERY_TURNS = 5
"""Event loop turns that get the store's queries under way (tasks, then threads or requests)."""
OUT_OF_SERVICE_MODES = frozenset({"out_of_service", "maintenance", "inspection", "fire", "seismic"})
"""Elevator modes in which the car does not carry residents."""

TODAY: dict[str, tuple[str, Aggregate, str, dict[str, str]]] = {
    # name: (measurement, aggregate, field, where); all passages, as the traffic chart counts them
    "in_today": ("gate_event", "count", "plate", {"type": "passage", "direction": "in"}),
    "out_today": ("gate_event", "count", "plate", {"type": "passage", "direction": "out"}),
    "granted_today": ("access_event", "count", "subject", {"type": "access", "result": "granted"}),
    "denied_today": ("access_event", "count", "subject", {"type": "access", "result": "denied"}),
    # a detection is one id through its phases: its start counts it once
    "detections_today": ("camera_event", "count", "score", {"type": "detection", "phase": "start"}),
    "kwh_today": ("charger_event", "sum", "energy_kwh", {"type": "session_stop"}),
}


async def today_counts(storage: Storage, site: str | None, now_ms: int,
                       settled: Settled | None = None) -> dict[str, float]:
    """TODAY's figures since China midnight: single-bucket aggregates, all sent to the store at once.

    With `settled`, the day up to a quarter of an hour ago is kept and only the rest is read again.
    """
    day = china_day_start(now_ms)
    extra = {"site": site} if site else {}

    async def part(since_ms: int, until_ms: int) -> list[float]:
        if until_ms <= since_ms:
            return [0.0] * len(TODAY)
        queries = [AggregateQuery(measurement, fn, field, {**where, **extra}, since_ms, until_ms, DAY_MS,
                                  CHINA_OFFSET_MS) for measurement, fn, field, where in TODAY.values()]
        return [answer[0][1] or 0 for answer in await storage.aggregate_many(queries)]

    earlier, recent = await read_in_two(settled, ("today", site), day, now_ms + 1, now_ms, HOUR_MS, part)
    return {name: e + r for name, e, r in zip(TODAY, earlier, recent, strict=True)}


def device_figures(registry: Registry, live: LiveState, site: str | None, now_ms: int) -> dict[str, Any]:
    """Devices per kind (total, online, faulted = online with an open fault), elevators in service, chargers."""
    devices = {kind: {"total": 0, "online": 0, "faulted": 0} for kind in KINDS}
    elevators = {"total": 0, "in_service": 0}
    chargers = {"total": 0, "charging": 0, "kw": 0.0}
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
        if device.kind == "elevator":
            elevators["total"] += 1
            in_service = online and not faulted and state.telemetry.get("mode") not in OUT_OF_SERVICE_MODES  # type: ignore[union-attr]
            elevators["in_service"] += in_service
        elif device.kind == "charger":
            chargers["total"] += 1
            if online:
                chargers["charging"] += state.telemetry.get("status") == "charging"  # type: ignore[union-attr]
                chargers["kw"] += state.telemetry.get("power_kw") or 0.0  # type: ignore[union-attr]
    total = elevators["total"]
    availability = round(elevators["in_service"] / total, 4) if total else 1.0
    chargers["kw"] = round(chargers["kw"], 2)
    return {"devices": devices, "elevators": {**elevators, "availability": availability}, "chargers": chargers}


def power_cap_kw(registry: Registry, site: str | None) -> float | None:
    """The sites' transformer capacity for chargers, summed; None when no site declares one."""
    caps = [s.power_cap_kw for name, s in registry.sites.items()
            if (site is None or name == site) and s.power_cap_kw is not None]
    return round(sum(caps), 2) if caps else None


def alert_figures(store: AlertStore, site: str | None) -> dict[str, dict[str, int]]:
    """Open and acknowledged alerts by severity, every severity listed."""
    counted = store.count_active(site)
    return {state: {s: counted.get((state, s), 0) for s in SEVERITIES} for state in ("open", "acknowledged")}


async def overview(storage: Storage, registry: Registry, live: LiveState, alerts: AlertStore,
                   inside: InsideTracker, site: str | None, now_ms: int,
                   settled: Settled | None = None) -> dict[str, Any]:
    """The whole answer of `GET /api/overview` (its shape is what the big screen is written against)."""
    # The store works (its threads, or InfluxDB) while this thread counts 10,000 devices (~15 ms):
    # a few turns of the event loop send the queries off first.
    counting = asyncio.ensure_future(today_counts(storage, site, now_ms, settled))
    for _ in range(QUERY_TURNS):
        await asyncio.sleep(0)
    try:
        live_figures = device_figures(registry, live, site, now_ms)
        alert_counts = alert_figures(alerts, site)
    except BaseException:
        counting.cancel()
        raise
    today = await counting
    return {
        "time": iso(now_ms),
        "site": site,
        "devices": live_figures["devices"],
        "vehicles": {"in_today": int(today["in_today"]), "out_today": int(today["out_today"]),
                     "inside": inside.count(site, now_ms)},
        "access": {"granted_today": int(today["granted_today"]), "denied_today": int(today["denied_today"])},
        "detections_today": int(today["detections_today"]),
        "alerts": alert_counts,
        "elevators": live_figures["elevators"],
        "chargers": {**live_figures["chargers"], "cap_kw": power_cap_kw(registry, site),
                     "kwh_today": round(today["kwh_today"], 2)},
    }
