"""Big-screen API latency at scale: `/api/overview` and the chart series, on the embedded store and InfluxDB 1.6.

A registry and live state of `--devices` devices (10 sites of 1,000 by default)
and `--days` of stored history (passages, access records, detections, charger
telemetry and sessions; seeded, so every run stores the same data), written
straight into the hub's store in 5,000-point batches as the outbox writer does.
The hub runs in this process (`Hub`, a real Mosquitto, the real app through
httpx's ASGITransport); each endpoint is called `--requests` times one after
the other and timed from request to parsed answer.

    .venv/bin/python bench/overview.py                                  # both backends, defaults
    .venv/bin/python bench/overview.py --devices 2000 --days 7 --backends embedded
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.alerts import percentile  # noqa: E402
from bench.proc import rss_mb  # noqa: E402
from devices import REGISTRY as KINDS  # noqa: E402
from devices.base import Point  # noqa: E402
from hub.alerts.models import open_alert  # noqa: E402
from hub.api import create_app  # noqa: E402
from hub.app import Hub  # noqa: E402
from hub.config import Settings  # noqa: E402
from hub.series import DAY_MS, HOUR_MS, china_day_start  # noqa: E402
from hub.settled import RECHECK_S  # noqa: E402
from hub.state import DeviceState  # noqa: E402
from hub.tally import TodayTally  # noqa: E402
from tests.support.influx_fixtures import start_influxd  # noqa: E402
from tests.support.mqtt_fixtures import start_mosquitto  # noqa: E402

TOKEN = "bench-token"
SITE_DEVICES = {"gate": 8, "access": 400, "camera": 300, "elevator": 190, "charger": 102}
"""One site of 1,000 devices: a large 小区 of ~20 buildings and ~3,000 households."""
PASSAGES_PER_GATE_DAY = 300
ACCESS_PER_DOOR_DAY = 10
DETECTIONS_PER_CAMERA_DAY = 2
"""Each one stored twice: its start and its end."""
SESSIONS_PER_CHARGER_DAY = 1.2
CHARGING_EVERY_MS = 15 * 60_000
IDLE_EVERY_MS = HOUR_MS
"""Charger meter values: every 15 minutes while charging (OCPP's common MeterValueSampleInterval), hourly idle."""
ALERTS_PER_DAY = 300
BATCH = 5_000
CACHE_S = 2.0
CACHED_EVERY_S = 0.05
"""Cached requests come 20 a second, so 200 of them span 10 s and five background refreshes."""
ENDPOINTS = [
    ("/api/overview", {}),
    ("/api/series/traffic", {}),
    ("/api/series/charging_power", {"hours": 24, "every_s": 900}),
    ("/api/series/alerts", {"days": 30}),
]
HOURS = [1, 0.5, 0.3, 0.3, 0.5, 1.5, 4, 8, 7, 4, 3, 3, 3.5, 3, 3, 3, 3.5, 6, 8, 6, 4, 3, 2, 1.5]
"""Relative traffic per China hour: morning and evening peaks."""
CUM_HOURS = list(itertools.accumulate(HOURS))


def site_names(devices: int) -> list[str]:
    return [f"site{i:02d}" for i in range(max(1, devices // sum(SITE_DEVICES.values())))]


def registry_toml(sites: list[str]) -> str:
    """Sites with a transformer cap, and every device with its building."""
    lines = []
    for site in sites:
        lines += [f"[sites.{site}]", 'name = "小区"', "power_cap_kw = 400", ""]
    for site in sites:
        for kind, n in SITE_DEVICES.items():
            for i in range(n):
                lines += ["[[devices]]", f'site = "{site}"', f'kind = "{kind}"', f'device = "{kind[0]}{i}"',
                          f'building = "{i % 20 + 1}"', ""]
    return "\n".join(lines)


class History:
    """Seeded points of `days` up to `now_ms`, one China day at a time (memory stays at one day's points)."""

    def __init__(self, sites: list[str], days: int, now_ms: int, seed: int = 1) -> None:
        self.sites, self.days, self.now_ms, self.seed = sites, days, now_ms, seed
        self.counts: dict[str, int] = {}

    def days_points(self) -> Iterator[list[Point]]:
        start = self.now_ms - self.days * DAY_MS
        rng = random.Random(self.seed)
        inside: dict[str, set[str]] = {site: set() for site in self.sites}
        plates = {site: [f"琼{'ABCDE'[j % 5]}{j:05d}" for j in range(2_500)] for site in self.sites}
        self.counts = {}
        for day in range(china_day_start(start), self.now_ms, DAY_MS):
            points: list[Point] = []
            for site in self.sites:
                points += self._gates(rng, site, day, plates[site], inside[site])
                points += self._events(rng, site, day)
                points += self._chargers(rng, site, day)
            points = [p for p in points if start <= p.time_ms <= self.now_ms]
            for p in points:
                name = f"{p.measurement} {p.tags.get('type', '')}".strip()
                self.counts[name] = self.counts.get(name, 0) + 1
            yield points

    @staticmethod
    def _times(rng: random.Random, day: int, n: int) -> list[int]:
        """`n` times in a China day, following the hourly profile (drawn in bulk: it is the generator's cost)."""
        hours = rng.choices(range(24), cum_weights=CUM_HOURS, k=n)
        return [day + h * HOUR_MS + int(rng.random() * HOUR_MS) for h in hours]

    def _gates(self, rng: random.Random, site: str, day: int, plates: list[str], inside: set[str]) -> list[Point]:
        out = []
        times = sorted(self._times(rng, day, SITE_DEVICES["gate"] * PASSAGES_PER_GATE_DAY))
        decisions = rng.choices(("allowed", "manual", "denied"), cum_weights=(93, 97, 100), k=len(times))
        for n, (t, decision) in enumerate(zip(times, decisions, strict=True)):
            plate = plates[int(rng.random() * len(plates))]
            direction = "out" if plate in inside else "in"
            if decision != "denied":
                (inside.discard if direction == "out" else inside.add)(plate)
            out.append(Point("gate_event", {"site": site, "device": f"g{n % SITE_DEVICES['gate']}", "type": "passage"},
                             {"plate": plate, "plate_color": "blue", "direction": direction, "lane": "1",
                              "vehicle_class": "car", "confidence": 0.95, "decision": decision,
                              "category": "resident", "id": f"p{t}-{n}", "lag_ms": 40}, t))
        return out

    def _events(self, rng: random.Random, site: str, day: int) -> list[Point]:
        out = []
        doors = SITE_DEVICES["access"]
        for n, t in enumerate(self._times(rng, day, doors * ACCESS_PER_DOOR_DAY)):
            granted = rng.random() < 0.96
            out.append(Point("access_event", {"site": site, "device": f"a{n % SITE_DEVICES['access']}",
                                              "type": "access"},
                             {"method": "face", "subject": f"r{int(rng.random() * 10_000)}",
                              "result": "granted" if granted else "denied", "id": f"a{t}-{n}", "lag_ms": 30}, t))
        for n, t in enumerate(self._times(rng, day, SITE_DEVICES["camera"] * DETECTIONS_PER_CAMERA_DAY)):
            tags = {"site": site, "device": f"c{n % SITE_DEVICES['camera']}", "type": "detection",
                    "label": rng.choice(("person", "vehicle", "loitering", "illegal_parking"))}
            for phase, dt in (("start", 0), ("end", 20_000)):
                out.append(Point("camera_event", tags, {"phase": phase, "score": 0.8, "id": f"d{t}-{n}",
                                                        "lag_ms": 50}, t + dt))
        return out

    def _chargers(self, rng: random.Random, site: str, day: int) -> list[Point]:
        out = []
        for c in range(SITE_DEVICES["charger"]):
            device = {"site": site, "device": f"c{c}"}
            tags = {**device, "building": str(c % 20 + 1)}
            sessions = int(SESSIONS_PER_CHARGER_DAY) + (rng.random() < SESSIONS_PER_CHARGER_DAY % 1)
            busy = []
            for s in range(sessions):
                begin = day + (rng.choice((18, 19, 20, 21, 22, 7, 12)) * HOUR_MS) + rng.randrange(HOUR_MS)
                length = rng.randrange(HOUR_MS, 4 * HOUR_MS)
                kw = rng.choice((3.5, 7.0, 7.0, 11.0))
                busy.append((begin, begin + length, kw))
                event = {**device, "type": "session_start"}
                out.append(Point("charger_event", event, {"session": f"{site}-{c}-{begin}", "connector": 1,
                                                          "id_tag": f"tag{rng.randrange(5000)}",
                                                          "meter_start_kwh": 1000.0, "id": f"s{begin}", "lag_ms": 20},
                                 begin))
                out.append(Point("charger_event", {**device, "type": "session_stop"},
                                 {"session": f"{site}-{c}-{begin}", "energy_kwh": round(kw * length / HOUR_MS, 2),
                                  "duration_s": length / 1000, "reason": "ev_disconnected", "id": f"e{begin}-{s}",
                                  "lag_ms": 20}, begin + length))
            t = day + c * 7_919 % IDLE_EVERY_MS
            while t < day + DAY_MS:
                kw = next((k for b, e, k in busy if b <= t < e), 0.0)
                out.append(Point("charger", tags, {"connector": 1, "status": "charging" if kw else "available",
                                                   "power_kw": kw, "energy_kwh": 1000.0, "voltage_v": 230.0,
                                                   "current_a": kw * 1000 / 230, "temperature_c": 35.0,
                                                   "limit_kw": 11.0, "lag_ms": 15}, t))
                soon = any(b - IDLE_EVERY_MS < t < e for b, e, _ in busy)  # sample densely around sessions
                t += CHARGING_EVERY_MS if soon else IDLE_EVERY_MS
        return out


def live_state(hub: Hub, now_ms: int, rng: random.Random) -> int:
    """Every registered device heard just now; 1% of them with an open fault (and its alert). Returns faults."""
    faults = 0
    for device in hub.registry:
        state = hub.live.devices[device.key] = DeviceState(device.site, device.kind, device.device, True, now_ms)
        if device.kind == "elevator":
            state.telemetry = {"floor": rng.randrange(1, 30), "mode": rng.choices(
                ("normal", "maintenance", "inspection"), (97, 2, 1))[0], "running": True}
        elif device.kind == "charger":
            charging = rng.random() < 0.3
            state.telemetry = {"status": "charging" if charging else "available",
                               "power_kw": rng.choice((3.5, 7.0, 11.0)) if charging else 0.0}
        if rng.random() < 0.01:
            code = next(iter(KINDS[device.kind].faults))
            state.open_faults[code] = {"since": now_ms - 60_000, "detail": None}
            alert = open_alert(device.site, device.kind, device.device, code, KINDS[device.kind].faults[code],
                               None, now_ms - 60_000, "device")
            hub.alert_store.save(alert)
            faults += 1
    return faults


def past_alerts(hub: Hub, days: int, now_ms: int, rng: random.Random) -> int:
    """`ALERTS_PER_DAY` resolved alerts a day over the history, in one transaction."""
    devices = list(hub.registry)
    db = hub.alert_store._db  # bench set-up only: one transaction instead of one per alert
    db.execute("BEGIN")
    n = 0
    for _ in range(days * ALERTS_PER_DAY):
        device = rng.choice(devices)
        code = rng.choice(list(KINDS[device.kind].faults))
        opened = now_ms - rng.randrange(days * DAY_MS)
        alert = open_alert(device.site, device.kind, device.device, code, KINDS[device.kind].faults[code], None,
                           opened, "device")
        hub.alert_store.save(replace(alert, state="resolved", resolved_ms=opened + 600_000, resolved_by="device"))
        n += 1
    db.execute("COMMIT")
    return n


async def fill(hubs: list[Hub], history: History) -> tuple[int, float]:
    """Write the history into every hub's store, generated once, a batch at a time to all of them side by side
    (each store takes batches one at a time, as the outbox writer gives them); returns (points, seconds)."""
    started = time.perf_counter()
    written = 0
    for points in history.days_points():
        for i in range(0, len(points), BATCH):
            batch = points[i:i + BATCH]
            await asyncio.gather(*(hub.storage.write(batch) for hub in hubs))
            written += len(batch)
    return written, time.perf_counter() - started


async def measure(api: httpx.AsyncClient, path: str, params: dict[str, Any], n: int,
                  every_s: float = 0.0) -> list[float]:
    """Milliseconds of `n` requests, one after the other, started `every_s` apart (0: back to back)."""
    for _ in range(3):  # warm-up: imports, first-query caches
        (await api.get(path, params=params)).raise_for_status()
    times = []
    for _ in range(n):
        await asyncio.sleep(every_s)
        started = time.perf_counter()
        response = await api.get(path, params=params)
        response.raise_for_status()
        response.json()
        times.append((time.perf_counter() - started) * 1000)
    return times


def hub_settings(backend: str, work: Path, args: argparse.Namespace, broker: Any, influx_url: str | None) -> Settings:
    return Settings(mqtt_url=broker.url(), mqtt_client_id=f"bench-{backend}", root=f"bench{backend}",
                    data_dir=work / backend, registry=work / "registry.toml", influx_url=influx_url,
                    influx_db="bench_overview", admin_token=TOKEN, retention_days=args.days + 2,
                    heartbeat_s=3 * 3600)


def tally_of(hub: Hub, history: History, now_ms: int) -> TodayTally:
    """The tally of a hub that has run for two hours: the history's events of that time counted, as the
    hub would have counted them when it accepted them (`hub.tally`)."""
    tally = TodayTally(hub.kinds, now_ms - 2 * HOUR_MS)
    for points in history.days_points():
        for point in points:
            if point.measurement.endswith("_event") and point.time_ms >= tally.since_ms:
                tally.count(point.measurement.removesuffix("_event"), point.tags["site"], [point])
    return tally


async def report(backend: str, hub: Hub, args: argparse.Namespace, tally: TodayTally) -> None:
    """Latency of each endpoint through the app: every request from scratch (cold); with the settled parts
    of today's counts and the charging curve kept, and the last hour from the tally (what each screen refresh
    costs the store); and with answers also shared for the screen cache's 2 s (what screens see)."""
    rebuild_started = time.perf_counter()
    await hub.inside.rebuild(hub.storage)
    rebuild_s = time.perf_counter() - rebuild_started
    transport = httpx.ASGITransport(app=create_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub", timeout=60,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        hub.screen_cache.ttl_s, hub.tally = 0, None
        sample = (await api.get("/api/overview")).json()
        print(f"\n== {backend} ({hub.storage.name}); vehicles inside rebuilt from {hub.settings.inside_days:g} days "
              f"of passages in {rebuild_s:.1f} s")
        print(f"   overview: vehicles {sample['vehicles']}, access {sample['access']}, detections today "
              f"{sample['detections_today']:,}, chargers {sample['chargers']}")
        modes = (("no cache (cold)", 0, 0.0, 0.0), ("settled parts kept", 0, RECHECK_S, 0.0),
                 (f"+ {CACHE_S:g} s answers, 20/s", CACHE_S, RECHECK_S, CACHED_EVERY_S))
        print(f"   {'':<28} " + "   ".join(f"{f'--- {name} ---':^26}" for name, *_ in modes))
        columns = f"{'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}"
        print(f"   {'endpoint':<28} " + "   ".join(columns for _ in modes))
        for path, params in ENDPOINTS:
            figures = []
            for _, ttl, recheck_s, every_s in modes:
                hub.screen_cache.ttl_s, hub.settled.recheck_s = ttl, recheck_s
                hub.tally = tally if recheck_s else None
                hub.settled.clear()
                times = await measure(api, path, params, args.requests, every_s)
                figures.append(" ".join(f"{v:>8.1f}" for v in (percentile(times, 50), percentile(times, 95),
                                                                  max(times))))
            print(f"   {path:<28} " + "   ".join(figures))
        hub.screen_cache.ttl_s, hub.tally = 0, tally
        tallied = (await api.get("/api/overview")).json()
        same = all(tallied[k] == sample[k] for k in ("vehicles", "access", "detections_today", "chargers"))
        print(f"   today's figures with the last two hours from the tally: {'the same' if same else 'DIFFERENT'}"
              f"{'' if same else f': {tallied}'}")


async def main_async(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="smarthub-overview-"))
    broker = start_mosquitto(work / "mosquitto")
    influxd = start_influxd(work / "influxdb") if "influx" in args.backends else None
    sites = site_names(args.devices)
    (work / "registry.toml").write_text(registry_toml(sites), encoding="utf-8")
    try:
        async with AsyncExitStack() as stack:
            hubs = [await stack.enter_async_context(Hub(hub_settings(
                backend, work, args, broker, influxd.url if backend == "influx" and influxd else None)))
                for backend in args.backends]
            now_ms = int(time.time() * 1000)
            history = History(sites, args.days, now_ms)
            points, seconds = await fill(hubs, history)
            for hub in hubs:  # the same seed: the same live state and alerts on every backend
                faults = live_state(hub, int(time.time() * 1000), random.Random(7))
                alerts = past_alerts(hub, args.days, now_ms, random.Random(8))
            print(f"{os.cpu_count()} cores; Mosquitto, InfluxDB 1.6 and the hub on this machine; China time now "
                  f"{time.strftime('%H:%M', time.gmtime(time.time() + 8 * 3600))} (today's counts cover the day "
                  "so far)")
            mix = ", ".join(f"{n} {k}" for k, n in SITE_DEVICES.items())
            print(f"{len(hubs[0].registry):,} devices in {len(sites)} sites ({mix} "
                  f"each), {faults} with an open fault; {args.days} days of history, {points:,} points written to "
                  f"{' and '.join(args.backends)} side by side in {seconds:.0f} s:")
            for name, n in sorted(history.counts.items()):
                print(f"   {name:<28} {n:>10,}   ({n / args.days / len(sites):,.0f} per site per day)")
            print(f"   alerts: {alerts:,} over the period, {faults} open")
            for backend, hub in zip(args.backends, hubs, strict=True):
                await report(backend, hub, args, tally_of(hub, history, now_ms))
            print(f"\nprocess RSS {rss_mb(os.getpid()):.0f} MB")
    finally:
        broker.service.stop()
        if influxd is not None:
            influxd.close()
        if args.keep:
            print(f"data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)  # gigabytes of it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--backends", nargs="+", choices=("embedded", "influx"), default=["embedded", "influx"])
    parser.add_argument("--keep", action="store_true", help="keep the stores' files (printed) instead of deleting")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
