"""`GET /api/district`: the district wall's (街道联动指挥中心) figures, one roll-up per community, worst first.

A street office watches dozens of communities (sites) on one wall and must see at a glance where to look
first. Per community: devices online of all, open and acknowledged alerts by severity, work orders past a
deadline, and each kind's district gauge (`DeviceKind.district`: elevator availability, charging load against
the cap, ...). The figures come from the sources the per-site overview reads (registry, live state, alert and
order stores, the kinds' controllers), counted as the overview counts them and with the kinds' own overview
figures (`OverviewSection.live`), so a community's tile and its wall never disagree; nothing is read from the
time-series store. The registry is walked once for every community, not once per community.

Worst first is one number per community (`score`), documented in `WEIGHTS`:

    score = 200 x critical + 20 x major + 4 x minor + 1 x info       (open alerts; acknowledged ones count half)
          + 10 x overdue work orders
          + 50 x the share of devices offline
          + 30 x each gauge's strain (0 all well .. 1 as bad as it gets, as its kind defines it)

so one open critical alert (a trapped passenger) outranks a community that is entirely dark, with three work
orders overdue and both gauges at their worst (50 + 30 + 60 = 140), and a dark community ranks like two majors
and a half. Ties go by slug, so the order never flickers. The hub's
own alerts (site `*`) concern every community alike: they are counted once for the district, not per tile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devices.base import DeviceKind, Gauge, LiveDevice
from hub.alerts.models import HUB_SITE, Alert
from hub.alerts.orders import WorkOrder
from hub.overview import NEVER_HEARD, SEVERITIES
from hub.registry import Device, DeviceKey, District, Registry, Site
from hub.state import LiveState
from hub.times import iso

SEVERITY_WEIGHTS: Mapping[str, float] = {"critical": 200.0, "major": 20.0, "minor": 4.0, "info": 1.0}
ACKNOWLEDGED_FACTOR = 0.5
"""An acknowledged alert is being handled, and still not over: it counts half."""
OVERDUE_WEIGHT = 10.0
OFFLINE_WEIGHT = 50.0
GAUGE_WEIGHT = 30.0
WEIGHTS: Mapping[str, Any] = {"severity": SEVERITY_WEIGHTS, "acknowledged_factor": ACKNOWLEDGED_FACTOR,
                              "overdue_order": OVERDUE_WEIGHT, "offline_share": OFFLINE_WEIGHT,
                              "gauge_strain": GAUGE_WEIGHT}
"""The worst-first score's weights, given with every answer so a screen can say how it ranks."""
STATES = ("open", "acknowledged")


@dataclass(frozen=True, slots=True)
class AlertTally:
    """Active alerts per site: (state, severity) -> count, and the device keys' open codes (for the kinds'
    live figures, as the overview gives them)."""

    counts: Mapping[str, Mapping[tuple[str, str], int]]
    codes: Mapping[DeviceKey, frozenset[str]]


def tally_alerts(active: Iterable[Alert]) -> AlertTally:
    """One pass over the active alerts for every site (one store read for the whole district)."""
    counts: dict[str, dict[tuple[str, str], int]] = {}
    codes: dict[DeviceKey, set[str]] = {}
    for alert in active:
        if alert.state not in STATES:
            continue
        per = counts.setdefault(alert.site, {})
        key = (alert.state, alert.severity.value)
        per[key] = per.get(key, 0) + 1
        codes.setdefault((alert.site, alert.kind, alert.device), set()).add(alert.code)
    return AlertTally(counts, {k: frozenset(v) for k, v in codes.items()})


def overdue_by_site(orders: Iterable[WorkOrder], now_ms: int) -> dict[str, int]:
    """Open work orders past one of their deadlines, per site."""
    out: dict[str, int] = {}
    for order in orders:
        if order.state != "resolved" and order.missed(now_ms):
            out[order.site] = out.get(order.site, 0) + 1
    return out


@dataclass(slots=True)
class SiteDevices:
    """One community's devices as the roll-up counts them: totals, and the live view of each kind with a
    district gauge (what the kind's `OverviewSection.live` reads, as the overview gives it)."""

    total: int = 0
    online: int = 0
    faulted: int = 0
    """Online with an open fault"""
    seen: dict[str, list[LiveDevice]] = field(default_factory=dict)


YIELD_EVERY = 2_000
"""Devices counted between two turns given to the event loop."""


async def count_devices(devices: Sequence[Device], live: LiveState, sites: Collection[str], now_ms: int,
                        kinds: Mapping[str, DeviceKind], alerting: Mapping[DeviceKey, Collection[str]]
                        ) -> dict[str, SiteDevices]:
    """Every community's devices in one pass over the registry (walking it once per community would cost 50
    walks), counted as `hub.overview.device_figures` counts them (a test holds the two together); the event
    loop gets a turn every `YIELD_EVERY` devices, so 100,000 of them never hold it for long."""
    gauged = frozenset(name for name, k in kinds.items() if k.district is not None)
    out = {site: SiteDevices(seen={name: [] for name in gauged}) for site in sites}
    states = live.devices
    for start in range(0, len(devices), YIELD_EVERY):
        if start:
            await asyncio.sleep(0)
        for device in devices[start:start + YIELD_EVERY]:
            acc = out.get(device.site)
            kind = device.kind
            if acc is None or kind not in kinds:
                continue
            acc.total += 1
            key = device.key
            state = states.get(key)
            online = state is not None and state.online(now_ms, live.heartbeat_for(device))
            faulted = online and bool(state.open_faults)  # type: ignore[union-attr]
            acc.online += online
            acc.faulted += faulted
            listed = acc.seen.get(kind)
            if listed is not None:
                codes = alerting.get(key, ())
                listed.append(LiveDevice(online, faulted, NEVER_HEARD, (), codes) if state is None else
                              LiveDevice(online, faulted, state.telemetry, state.open_faults.keys(), codes))
    return out


def severity_counts(counts: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    return {state: {s: counts.get((state, s), 0) for s in SEVERITIES} for state in STATES}


def score(alerts: Mapping[str, Mapping[str, int]], overdue: int, online: int, total: int,
          strains: Iterable[float]) -> float:
    """The worst-first score (see the module's docstring); higher is worse."""
    weighted = sum(SEVERITY_WEIGHTS[s] * (alerts["open"][s] + ACKNOWLEDGED_FACTOR * alerts["acknowledged"][s])
                   for s in SEVERITIES)
    offline = (total - online) / total if total else 0.0
    return round(weighted + OVERDUE_WEIGHT * overdue + OFFLINE_WEIGHT * offline
                 + GAUGE_WEIGHT * sum(strains), 2)


def gauges_of(kinds: Mapping[str, DeviceKind], live_figures: Mapping[str, Mapping[str, Any]],
              controllers: Mapping[str, Any], site: str) -> dict[str, tuple[DeviceKind, Gauge]]:
    """Each kind's district gauge at one site, by gauge name; a kind with nothing to gauge there gives none."""
    out: dict[str, tuple[DeviceKind, Gauge]] = {}
    for name, kind in kinds.items():
        spec = kind.district
        if spec is None or name not in live_figures:
            continue
        gauge = spec.read(live_figures[name], controllers.get(name), site)
        if gauge is not None:
            if spec.name in out:
                raise ValueError(f"district gauge {spec.name!r} of kind {name!r} is also {out[spec.name][0].name!r}'s")
            out[spec.name] = (kind, gauge)
    return out


def community(slug: str, site: Site | None, devices: SiteDevices, kinds: Mapping[str, DeviceKind],
              alerts: AlertTally, overdue: int, controllers: Mapping[str, Any]) -> dict[str, Any]:
    """One community's tile: its figures and its score (its rank is given when the district is ordered)."""
    entry = site or Site()
    live_figures = {name: kinds[name].overview.live(listed, [entry])  # type: ignore[union-attr]
                    for name, listed in devices.seen.items()}
    counted = severity_counts(alerts.counts.get(slug, {}))
    gauges = gauges_of(kinds, live_figures, controllers, slug)
    return {
        "site": slug, "zh": entry.name or slug, "en": entry.name_en or entry.name or slug,
        "devices": {"total": devices.total, "online": devices.online, "faulted": devices.faulted},
        "alerts": counted, "overdue_orders": overdue,
        "gauges": {name: {"zh": kind.district.zh, "en": kind.district.en, "unit": kind.district.unit,  # type: ignore[union-attr]
                          **gauge._asdict()} for name, (kind, gauge) in gauges.items()},
        "score": score(counted, overdue, devices.online, devices.total, (g.strain for _, g in gauges.values())),
    }


def worst_first(communities: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Highest score first, ties by slug; each gets its `rank` (1 is the worst)."""
    ordered = sorted(communities, key=lambda c: (-c["score"], c["site"]))
    return [{**c, "rank": i} for i, c in enumerate(ordered, 1)]


def totals(communities: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The district's sums over its communities."""
    return {
        "communities": len(communities),
        "devices": {k: sum(c["devices"][k] for c in communities) for k in ("total", "online", "faulted")},
        "alerts": {state: {s: sum(c["alerts"][state][s] for c in communities) for s in SEVERITIES}
                   for state in STATES},
        "overdue_orders": sum(c["overdue_orders"] for c in communities),
    }


def district_names(slug: str, district: District | None) -> dict[str, str]:
    return {"slug": slug, "zh": district.zh if district else slug,
            "en": (district.en or slug) if district else slug}


async def districts(registry: Registry, live: LiveState, active: Iterable[Alert], orders: Iterable[WorkOrder],
                    kinds: Mapping[str, DeviceKind], controllers: Mapping[str, Any], slugs: Sequence[str],
                    now_ms: int) -> list[dict[str, Any]]:
    """Each district's part of `GET /api/district`, its communities worst first. The stores and the registry
    are read once for all of them."""
    tally = tally_alerts(active)
    overdue = overdue_by_site(orders, now_ms)
    members = {slug: registry.district_sites(slug) for slug in slugs}
    wanted = {site for sites in members.values() for site in sites}
    counted = await count_devices(list(registry), live, wanted, now_ms, kinds, tally.codes)
    hub_alerts = severity_counts(tally.counts.get(HUB_SITE, {}))
    out = []
    for slug in slugs:
        tiles = [community(site, registry.sites.get(site), counted[site], kinds, tally, overdue.get(site, 0),
                           controllers) for site in members[slug]]
        ordered = worst_first(tiles)
        out.append({"time": iso(now_ms), "district": district_names(slug, registry.districts.get(slug)),
                    "communities": ordered, "totals": totals(ordered), "hub_alerts": hub_alerts,
                    "weights": WEIGHTS})
    return out
