"""Simulated OCPP piles against a running hub: they connect with their own passwords, charge cars, and obey the
limits the hub's commands API sends, as the charger kind's telemetry and events show."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from simulators.ocpp_charger import OcppCharger, SimClock
from tests.support.hub_fixtures import HubRun, eventually, http_served

pytestmark = [pytest.mark.integration, pytest.mark.services]
SMARTHUB = str(Path(sys.executable).with_name("smarthub"))


@asynccontextmanager
async def served(run: HubRun) -> AsyncIterator[str]:
    """The hub's HTTP server (its OCPP endpoint) on a free port; yields its ws:// URL."""
    async with http_served(run) as port:
        yield f"ws://127.0.0.1:{port}"


@asynccontextmanager
async def pile(run: HubRun, url: str, device: str, speed: float) -> AsyncIterator[OcppCharger]:
    """A simulated pile with a car plugged in from the start, its account made as `smarthub device add` does."""
    password = run.hub.credentials.add(run.site, "charger", device)
    charger = OcppCharger(run.site, device, url, password, random.Random(device),
                          SimClock(int(time.time() * 1000), speed), meter_every_s=0.3, plugged_at_start=True)
    task = asyncio.create_task(charger.run())
    try:
        yield charger
    finally:
        charger.stop()
        await asyncio.wait_for(task, 10)


async def telemetry(run: HubRun, device: str) -> dict[str, Any]:
    response = await run.api.get("/api/devices", params={"kind": "charger"})
    assert response.status_code == 200, response.text
    found = {d["device"]: d for d in response.json()}.get(device)
    return found or {}


async def events(run: HubRun, device: str, type_: str) -> list[dict[str, Any]]:
    await run.stored()
    return await run.events(kind="charger", device=device, type=type_)


async def command(run: HubRun, device: str, op: str, **args: Any) -> dict[str, Any]:
    response = await run.api.post(f"/api/devices/{run.site}/charger/{device}/commands", json={"op": op, "args": args})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_pile_charges_a_car_obeys_limits_and_a_remote_stop(embedded_hub: HubRun) -> None:
    run = embedded_hub
    async with served(run) as url, pile(run, url, "ocpp-ev-1", speed=60) as charger:
        await eventually(lambda: charger.connected, timeout=10, what="the pile connected and booted")
        device = await eventually(lambda: telemetry(run, "ocpp-ev-1"), what="the pile in /api/devices")
        assert device["online"] is True
        [start] = await eventually(lambda: events(run, "ocpp-ev-1", "session_start"), timeout=10,
                                   what="session_start")
        assert start["session"] == str(charger.pile.transaction_id) and start["id_tag"]

        async def drawing(at_most: float, at_least: float = 0.0) -> bool:
            t = (await telemetry(run, "ocpp-ev-1")).get("telemetry", {})
            power = t.get("power_kw")
            return power is not None and at_least <= power <= at_most and t.get("soc_pct") is not None

        await eventually(lambda: drawing(7.4, 1.0), timeout=10, what="telemetry with power")

        assert (await command(run, "ocpp-ev-1", "set_limit", limit_kw=2.5))["ok"] is True
        await eventually(lambda: drawing(2.5, 1.4), timeout=10, what="the power under the 2.5 kW limit")
        assert charger.limit_w(charger.clock()) == 2500.0
        # Below the 6 A minimum the car is paused, never given less.
        assert (await command(run, "ocpp-ev-1", "set_limit", limit_kw=1.0))["ok"] is True
        await eventually(lambda: drawing(0.0), timeout=10, what="the car paused under a 1 kW limit")
        status = await eventually(lambda: _status(run, "ocpp-ev-1", "suspended_evse"), what="suspended_evse")
        assert status
        assert (await command(run, "ocpp-ev-1", "set_limit", limit_kw=7.0))["ok"] is True
        await eventually(lambda: drawing(7.0, 3.0), timeout=10, what="charging again at the raised limit")

        assert (await command(run, "ocpp-ev-1", "stop_session"))["ok"] is True
        [stop] = await eventually(lambda: events(run, "ocpp-ev-1", "session_stop"), timeout=10, what="session_stop")
        assert stop["session"] == start["session"] and stop["reason"] == "remote" and stop["energy_kwh"] > 0
    await eventually(lambda: _offline(run, "ocpp-ev-1"), what="the pile offline once its socket closed")


async def test_a_car_charged_to_full_or_gone_ends_its_session_and_a_dropped_socket_reconnects(
        embedded_hub: HubRun) -> None:
    run = embedded_hub
    async with served(run) as url, pile(run, url, "ocpp-ev-2", speed=7200) as charger:
        [stop] = await eventually(lambda: events(run, "ocpp-ev-2", "session_stop"), timeout=20,
                                  what="the session to end by itself (full, or the car left)")
        assert stop["reason"] in ("local", "ev_disconnected") and stop["energy_kwh"] > 0
        # The hub (or the network) drops the socket: the pile comes back on its own.
        first = charger.connections
        assert charger._ws is not None
        await charger._ws.close()
        await eventually(lambda: charger.connections > first and charger.connected, timeout=15,
                         what="the pile reconnected")
        await eventually(lambda: _online(run, "ocpp-ev-2"), what="online again")


async def _status(run: HubRun, device: str, status: str) -> bool:
    return (await telemetry(run, device)).get("telemetry", {}).get("status") == status


async def _offline(run: HubRun, device: str) -> bool:
    return (await telemetry(run, device)).get("online") is False


async def _online(run: HubRun, device: str) -> bool:
    return (await telemetry(run, device)).get("online") is True


async def test_smarthub_simulate_runs_some_chargers_over_ocpp_with_accounts_it_makes(embedded_hub: HubRun) -> None:
    """The command line: the last two chargers speak OCPP (their passwords made in the hub's accounts store),
    the rest of the community MQTT; SIGINT closes every socket."""
    from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER

    run = embedded_hub
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTHUB_")} | {
        "SMARTHUB_DATA_DIR": str(run.hub.settings.data_dir), "SMARTHUB_ADMIN_TOKEN": "sim-token"}
    async with served(run) as url:
        sim = subprocess.Popen([SMARTHUB, "simulate", "--devices", "30", "--seed", "3", "--speed", "10",
                                "--root", run.root, "--mqtt", run.broker.url(DEVICE_USER, DEVICE_PASSWORD),
                                "--ocpp-chargers", "2", "--hub-url", url.replace("ws://", "http://")],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            async def over_ocpp() -> list[dict[str, Any]]:
                listed = (await run.api.get("/api/devices", params={"kind": "charger"})).json()
                ocpp = [d for d in listed if "OCPP" in str(d["info"].get("model")) and d["online"]]
                mqtt = [d for d in listed if "OCPP" not in str(d["info"].get("model")) and d["online"]]
                return ocpp if len(ocpp) == 2 and mqtt else []

            ocpp = await eventually(over_ocpp, timeout=30, what="two OCPP chargers online beside MQTT ones")
            sim.send_signal(signal.SIGINT)
            out, err = await asyncio.to_thread(sim.communicate, timeout=30)
            assert sim.returncode == 0, err.decode()
            assert b'"ocpp_chargers": 2' in out and b"Traceback" not in err
            for device in ocpp:
                await eventually(lambda d=device["device"]: _offline(run, d), what="the OCPP piles offline")
        finally:
            if sim.poll() is None:
                sim.kill()
