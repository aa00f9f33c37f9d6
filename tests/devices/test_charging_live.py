"""Orderly charging end to end: 20 simulated OCPP charge points and 10 simulated MQTT chargers share a site capped
at 100 kW on a real hub, a real Mosquitto and real WebSockets, with demand far above the cap.

Issue 13's test: after every change (cars arriving, the transformer's base load moving, cars leaving) the measured
sum of the chargers' `power_kw` in the hub's live state gets under the headroom within 30 s and stays there, and
every car is given at least 6 A or paused at 0. The simulators run 30 times faster than the clock, so a charger
reports every second; the controller reallocates within a second of a change."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hub.config import Settings, parse_mqtt_url
from simulators.charger import Charger
from simulators.community import Community
from simulators.ocpp_charger import OcppCharger, SimClock
from simulators.runner import LiveRun
from tests.support.hub_fixtures import HubRun, eventually, http_served, running_hub
from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER, Broker

pytestmark = [pytest.mark.integration, pytest.mark.services, pytest.mark.timeout(150)]

SITE = "sunshine"
CAP_KW = 100.0
SPEED = 30.0
OCPP = [f"ocpp-{i:02d}" for i in range(20)]
MQTT = [f"mqtt-{i:02d}" for i in range(10)]
MIN_KW = 6 * 230 / 1000
"""6 A on a single-phase 230 V pile: the least a charging car is ever given."""
SETTLE_S = 30.0
"""The issue's bound: under the headroom within this long after a change."""
HOLD_S = 6.0
"""How long the sum must then stay under before the next change."""
TOLERANCE_KW = 0.2
"""The controller's own over-cap tolerance: meters are not exact."""
REGISTRY = f"""
[sites.{SITE}]
name = "阳光花园"
power_cap_kw = {CAP_KW}

[[devices]]
site = "{SITE}"
kind = "meter"
device = "tx-1"
role = "transformer"
""" + "".join(f"""
[[devices]]
site = "{SITE}"
kind = "charger"
device = "{d}"
max_current_a = 32
phases = 1
""" for d in OCPP + MQTT)


@dataclass
class Watch:
    """Samples the hub's live state: the chargers' measured sum against the headroom the controller uses."""

    run: HubRun
    samples: list[tuple[float, float]] = field(default_factory=list)
    """(monotonic s, measured sum kW)"""
    worst: list[tuple[float, float, str]] = field(default_factory=list)
    """(s after the change, kW above the headroom, which change) for every sample judged"""

    def measured_kw(self) -> float:
        live = self.run.hub.live.devices
        return sum((live[(SITE, "charger", d)].telemetry.get("power_kw") or 0.0)
                   for d in OCPP + MQTT if (SITE, "charger", d) in live)

    async def sample(self) -> None:
        """Every 0.1 s, for as long as the test runs."""
        while True:
            self.samples.append((time.monotonic(), self.measured_kw()))
            await asyncio.sleep(0.1)

    async def under(self, headroom_kw: float, since: float, what: str) -> float:
        """Seconds from the change at `since` (monotonic) until the measured sum was last above `headroom_kw`:
        no sample may be above it later than SETTLE_S after the change; returns once it held HOLD_S under."""
        under_at: float | None = None
        last_above = since
        seen = 0
        while True:
            await asyncio.sleep(0.2)
            fresh = [s for s in self.samples[seen:] if s[0] >= since]
            seen = len(self.samples)
            for at, kw in fresh:
                self.worst.append((at - since, kw - headroom_kw, what))
                if kw <= headroom_kw + TOLERANCE_KW:
                    under_at = at if under_at is None else under_at
                    if at - under_at >= HOLD_S:
                        return last_above - since
                else:
                    under_at, last_above = None, at
                    assert at - since <= SETTLE_S, (f"{what}: {kw:.1f} kW, above the {headroom_kw} kW headroom, "
                                                    f"{at - since:.1f} s after the change")


@asynccontextmanager
async def served(run: HubRun) -> AsyncIterator[str]:
    """The hub's HTTP server (its OCPP endpoint) on a free port; yields its ws:// URL."""
    async with http_served(run) as port:
        yield f"ws://127.0.0.1:{port}"


@asynccontextmanager
async def ocpp_piles(run: HubRun, url: str, clock: SimClock) -> AsyncIterator[list[OcppCharger]]:
    """Twenty OCPP charge points, each with its own account, each with a car plugged in as it comes up."""
    piles = [OcppCharger(SITE, d, url, run.hub.credentials.add(SITE, "charger", d), random.Random(d), clock,
                         meter_every_s=0.5, plugged_at_start=True) for d in OCPP]
    tasks = [asyncio.create_task(p.run()) for p in piles]
    try:
        yield piles
    finally:
        for p in piles:
            p.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)


@asynccontextmanager
async def mqtt_chargers(broker: Broker, run: HubRun, start_ms: int) -> AsyncIterator[list[Charger]]:
    """Ten MQTT chargers (simulators/charger.py) on the real broker, each with a car about to plug in."""
    chargers = [Charger(site=SITE, device=d, rng=random.Random(d)) for d in MQTT]
    for c in chargers:
        c.status, c.status_until = "preparing", 0  # a car at every pile: demand far above the cap
    live = LiveRun(Community(SITE, list(chargers)), parse_mqtt_url(broker.url(DEVICE_USER, DEVICE_PASSWORD)),
                   run.root, speed=SPEED)
    task = asyncio.create_task(live.run(start_ms, None))
    try:
        yield chargers
    finally:
        live.stop()
        await asyncio.gather(task, return_exceptions=True)
        await live.close()


async def charging_view(run: HubRun) -> dict:  # type: ignore[type-arg]
    response = await run.api.get(f"/api/charging/{SITE}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def six_amps_or_paused(run: HubRun, what: str) -> dict:  # type: ignore[type-arg]
    """Every car's limit (given and acknowledged) is 0 or at least 6 A, and a paused car draws nothing."""
    body = await charging_view(run)
    for c in body["connectors"]:
        for kw in (c["limit_kw"], c["sent_kw"]):
            assert kw is None or kw == 0 or kw >= MIN_KW - 0.05, f"{what}: {c['device']} given {kw} kW: {c}"
        if c["state"] == "paused":
            assert c["limit_kw"] == 0 and c["power_kw"] == 0, f"{what}: a paused car draws: {c}"
    return body


async def command(run: HubRun, device: str, op: str, **args: object) -> dict:  # type: ignore[type-arg]
    response = await run.api.post(f"/api/devices/{SITE}/charger/{device}/commands", json={"op": op, "args": args})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_thirty_chargers_over_ocpp_and_mqtt_stay_under_a_100_kw_cap_within_30_s_of_every_change(
    settings_for: Callable[..., Settings], mosquitto: Broker, tmp_path: Path
) -> None:
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY, encoding="utf-8")
    settings = settings_for("embedded", registry=registry, charging_period_s=1.0, charging_debounce_s=0.2,
                            charging_renew_s=10.0)  # renewed well before the dead-man step (900 s / 30 = 30 s)
    async with running_hub(settings, mosquitto) as run, served(run) as url:
        watch = Watch(run)
        meter = run.topic("meter", "tx-1", "telemetry")
        await run.publish(meter, {"utility": "electricity", "power_kw": 0.0})
        sampler = asyncio.create_task(watch.sample())
        start_ms, started = int(time.time() * 1000), time.monotonic()
        async with ocpp_piles(run, url, SimClock(start_ms, SPEED)) as piles, \
                mqtt_chargers(mosquitto, run, start_ms) as chargers:
            await eventually(lambda: all(p.connected for p in piles), timeout=20, what="20 OCPP piles connected")

            def all_charging() -> bool:
                live = run.hub.live.devices
                return all(live.get((SITE, "charger", d)) is not None
                           and live[(SITE, "charger", d)].telemetry.get("status") in ("charging", "suspended_evse")
                           for d in OCPP + MQTT)

            # 1. Thirty cars arrive: up to 218 kW wanted against 100.
            await eventually(all_charging, timeout=20, what="30 cars plugged in")
            wanted = sum(p.pile.car.max_kw for p in piles if p.pile.car) + 7.0 * len(chargers)
            assert wanted > 1.5 * CAP_KW
            arrived = await watch.under(CAP_KW, started, "30 cars arriving")
            body = await six_amps_or_paused(run, "30 cars arriving")
            assert body["headroom_kw"] == CAP_KW
            assert sum(c["state"] == "admitted" for c in body["connectors"]) == 30  # 100 kW gives each 6 A
            assert body["measured_kw"] > 0.8 * CAP_KW  # the headroom is used, not left idle

            # 2. The estate's own load rises to 60 kW at the transformer: 40 kW left, below 30 x 6 A, so some wait.
            changed = time.monotonic()
            await run.publish(meter, {"utility": "electricity", "power_kw": 60.0})
            await eventually(lambda: _headroom_is(run, 40.0), timeout=10, what="the headroom at 40 kW")
            squeezed = await watch.under(40.0, changed, "the base load at 60 kW")
            body = await six_amps_or_paused(run, "the base load at 60 kW")
            paused = [c["device"] for c in body["connectors"] if c["state"] == "paused"]
            assert 2 <= len(paused) <= 5, body  # 40 / 1.38 = 28 admitted at most
            assert all(c["power_kw"] >= MIN_KW - 0.05 or c["power_kw"] == 0 or (c["soc_pct"] or 0) > 80
                       for c in body["connectors"]), body

            # 3. Five cars leave (remote stops through the commands API) and the base load falls to 20 kW.
            leaving = [*OCPP[:3], *MQTT[:2]]
            changed = time.monotonic()
            for device in leaving:
                assert (await command(run, device, "stop_session"))["ok"] is True
            await run.publish(meter, {"utility": "electricity", "power_kw": 20.0})
            await eventually(lambda: _headroom_is(run, 80.0), timeout=10, what="the headroom at 80 kW")
            left = await watch.under(80.0, changed, "five cars leaving, the base load at 20 kW")
            body = await six_amps_or_paused(run, "five cars leaving")
            assert not [c for c in body["connectors"] if c["state"] == "paused"], body  # room for all 25 again
            assert {c["device"] for c in body["connectors"] if c["state"] == "idle"} >= set(leaving)

        sampler.cancel()
    peak = {what: max(kw for _, kw, w in watch.worst if w == what) for _, _, what in watch.worst}
    print(f"\nunder the headroom after: arrival {arrived:.1f} s, base load up {squeezed:.1f} s, cars leaving "
          f"{left:.1f} s; most above the headroom: " + ", ".join(f"{w} {kw:+.1f} kW" for w, kw in peak.items())
          + f"; max sum {max(kw for _, kw in watch.samples):.1f} kW")


async def _headroom_is(run: HubRun, kw: float) -> bool:
    return (await charging_view(run))["headroom_kw"] == kw
