"""District wall latency at scale: `GET /api/district/{slug}` over `--sites` communities of `--devices` each.

A hub in this process (a real Mosquitto, the embedded store, the app through httpx's ASGITransport) with a
registry of one district of `--sites` sites (50 x 2,000 devices by default: a street office's whole area),
every device heard just now, 1 % of them with an open fault and its alert, and one work order per alert. The
district is asked `--requests` times back to back: uncached (each answer computed), then with answers shared for
the screen cache's 2 s at 20 requests a second (what wall screens see). Beside each, the longest the event loop
was held (a probe task that wakes every millisecond): the roll-up yields between communities, so ingest and
other requests go on while it runs.

    .venv/bin/python bench/district.py
    .venv/bin/python bench/district.py --sites 10 --devices 2000 --requests 20
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.alerts import percentile  # noqa: E402
from bench.proc import rss_mb  # noqa: E402
from devices import REGISTRY as KINDS  # noqa: E402
from hub.alerts.models import open_alert  # noqa: E402
from hub.api import create_app  # noqa: E402
from hub.app import Hub  # noqa: E402
from hub.config import Settings  # noqa: E402
from hub.registry import Device, District, RegistryFile, Site  # noqa: E402
from hub.state import DeviceState  # noqa: E402
from tests.support.mqtt_fixtures import start_mosquitto  # noqa: E402

TOKEN = "bench-token"
SHARES = {"gate": 0.008, "access": 0.4, "camera": 0.3, "elevator": 0.19, "charger": 0.102}
"""A large 小区's devices by kind (the overview bench's mix)."""
CACHE_S = 2.0
CACHED_EVERY_S = 0.05


def registry(sites: int, per_site: int) -> RegistryFile:
    names = [f"c{i:02d}" for i in range(sites)]
    devices = [Device(site=s, kind=kind, device=f"{kind[0]}{i}", building=str(i % 20 + 1), max_current_a=32)
               for s in names for kind, share in SHARES.items() for i in range(max(1, round(per_site * share)))]
    return RegistryFile(districts={"xinhe": District(zh="新河街道", en="Xinhe")},
                        sites={s: Site(name=f"{s}小区", district="xinhe", power_cap_kw=400) for s in names},
                        devices=devices)


def live_state(hub: Hub, now_ms: int, rng: random.Random) -> int:
    """Every device heard just now, 1 % with an open fault and its alert (and a work order). Returns faults."""
    faults = 0
    for device in hub.registry:
        state = hub.live.devices[device.key] = DeviceState(device.site, device.kind, device.device, True, now_ms)
        if device.kind == "elevator":
            state.telemetry = {"floor": rng.randrange(1, 30), "mode": rng.choices(
                ("normal", "maintenance", "inspection"), (97, 2, 1))[0]}
        elif device.kind == "charger":
            charging = rng.random() < 0.3
            state.telemetry = {"status": "charging" if charging else "available",
                               "power_kw": rng.choice((3.5, 7.0, 11.0)) if charging else 0.0}
        if rng.random() < 0.01:
            code = next(iter(KINDS[device.kind].faults))
            state.open_faults[code] = {"since": now_ms - 60_000, "detail": None}
            alert = open_alert(device.site, device.kind, device.device, code, KINDS[device.kind].faults[code],
                               None, now_ms - 7_200_000, "device")
            hub.alert_store.save(alert)
            faults += 1
    return faults


class Probe:
    """The longest the event loop was held between two wake-ups a millisecond apart (ms)."""

    def __init__(self) -> None:
        self.held = 0.0
        self.running = True

    async def run(self) -> None:
        while self.running:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.held = max(self.held, (time.perf_counter() - before) * 1000 - 1)


class FullCollections:
    """Python's full (generation 2) garbage collections and their longest pause: with 100,000 devices' live
    state and registry entries on the heap, one takes hundreds of ms whoever allocated last."""

    def __init__(self) -> None:
        self.count = 0
        self.longest_ms = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.count += 1
            self.longest_ms = max(self.longest_ms, (time.perf_counter() - self._started) * 1000)


async def idle_held(seconds: float) -> float:
    """The loop held by the hub's own tasks alone (its controllers' rounds, the overdue check), no request."""
    probe = Probe()
    task = asyncio.create_task(probe.run())
    await asyncio.sleep(seconds)
    probe.running = False
    await task
    return probe.held


async def measure(api: httpx.AsyncClient, path: str, n: int, every_s: float) -> tuple[list[float], float]:
    """Milliseconds of `n` requests started `every_s` apart, and the longest the event loop was held (ms)."""
    for _ in range(2):
        (await api.get(path)).raise_for_status()
    probe = Probe()
    task = asyncio.create_task(probe.run())
    times = []
    for _ in range(n):
        await asyncio.sleep(every_s)
        started = time.perf_counter()
        response = await api.get(path)
        response.raise_for_status()
        response.json()
        times.append((time.perf_counter() - started) * 1000)
    probe.running = False
    await task
    return times, probe.held


async def main_async(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="smarthub-district-"))
    broker = start_mosquitto(work / "mosquitto")
    settings = Settings(mqtt_url=broker.url(), mqtt_client_id="bench-district", root="benchdistrict",
                        data_dir=work / "data", admin_token=TOKEN, heartbeat_s=3 * 3600, dispatch_within_s=0.001)
    try:
        async with Hub(settings) as hub:
            hub.registry.add(registry(args.sites, args.devices))
            now_ms = int(time.time() * 1000)
            faults = live_state(hub, now_ms, random.Random(1))
            for alert in hub.alert_store.active():
                hub.desk.open(alert, None, "bench")  # overdue at once (dispatch_within_s)
            await asyncio.sleep(0.01)
            hub.desk.check_overdue()  # escalated now, not by the hub's own check while we measure
            if args.freeze:
                gc.collect()
                gc.freeze()  # the set-up's objects out of the collector's way
            collections = FullCollections()
            transport = httpx.ASGITransport(app=create_app(hub))
            async with httpx.AsyncClient(transport=transport, base_url="http://hub", timeout=120,
                                         headers={"Authorization": f"Bearer {TOKEN}"}) as api:
                print(f"== district of {args.sites} communities x {args.devices:,} devices = {len(hub.registry):,} "
                      f"devices; {faults} open faults with alerts and work orders")
                hub.screen_cache.ttl_s = 0
                sample = (await api.get("/api/district/xinhe")).json()
                worst = sample["communities"][0]
                print(f"   worst: {worst['site']} score {worst['score']} ({worst['alerts']['open']}, "
                      f"overdue {worst['overdue_orders']}, gauges "
                      f"{ {k: g['share'] for k, g in worst['gauges'].items()} })")
                print(f"   {'mode':<30} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'loop held ms':>13}")
                for name, ttl, every in (("no cache (each computed)", 0, 0.0),
                                         (f"{CACHE_S:g} s answers, 20/s", CACHE_S, CACHED_EVERY_S)):
                    hub.screen_cache.ttl_s = ttl
                    times, held = await measure(api, "/api/district/xinhe", args.requests, every)
                    print(f"   {name:<30} {percentile(times, 50):>8.1f} {percentile(times, 95):>8.1f} "
                          f"{max(times):>8.1f} {held:>13.1f}")
                print(f"   the hub's own tasks alone held the loop up to {await idle_held(10):.1f} ms over 10 s")
                print(f"   full garbage collections: {collections.count}, the longest {collections.longest_ms:.0f} ms"
                      f"{' (heap frozen after set-up)' if args.freeze else ''}")
                print(f"   rss {rss_mb(os.getpid()):.0f} MB")
    finally:
        broker.service.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--devices", type=int, default=2000, help="per community")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() after the set-up")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
