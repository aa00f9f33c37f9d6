"""Simulated devices on a real Mosquitto, seen by a real hub: online, talking, answering, dying."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from devices import REGISTRY
from hub.config import parse_mqtt_url
from simulators.community import build
from simulators.runner import LiveRun
from tests.support.hub_fixtures import HubRun, eventually, running_hub
from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER, Broker, read_retained

pytestmark = [pytest.mark.integration, pytest.mark.services]
SMARTHUB = str(Path(sys.executable).with_name("smarthub"))


async def devices(run: HubRun) -> list[dict]:  # type: ignore[type-arg]
    return (await run.api.get("/api/devices")).json()  # type: ignore[no-any-return]


async def test_a_simulated_community_comes_online_and_answers_commands(settings_for, mosquitto: Broker) -> None:  # type: ignore[no-untyped-def]
    async with running_hub(settings_for("embedded"), mosquitto) as run:
        community = build(run.site, 3, 12)
        live = LiveRun(community, parse_mqtt_url(mosquitto.url(DEVICE_USER, DEVICE_PASSWORD)), run.root, speed=20)
        task = asyncio.create_task(live.run(int(time.time() * 1000), None))
        try:
            await eventually(lambda: _all_online(run, 12), timeout=20, what="all 12 devices online")
            listed = await devices(run)
            assert {d["kind"] for d in listed} == set(REGISTRY)
            charger = next(d for d in listed if d["kind"] == "charger")
            cmd = {"id": "cmd-1", "op": "set_limit", "args": {"limit_kw": 3.3}}
            await run.publish(run.topic("charger", charger["device"], "cmd"), cmd)
            reply = await eventually(lambda: run.events(type="reply", device=charger["device"]), timeout=10,
                                     what="the charger's reply")
            assert reply[0]["id"] == "cmd-1" and reply[0]["ok"] is True

            async def new_limit() -> bool:
                return await _telemetry(run, charger["device"], "limit_kw") == 3.3

            await eventually(new_limit, what="the charger to report its new limit")
        finally:
            live.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await live.close()


async def _all_online(run: HubRun, n: int) -> bool:
    listed = await devices(run)
    return len(listed) == n and all(d["online"] for d in listed)


async def _telemetry(run: HubRun, device: str, field: str) -> object:
    listed = await devices(run)
    return next(d for d in listed if d["device"] == device)["telemetry"].get(field)


async def test_killed_simulator_devices_go_offline_through_their_last_will(settings_for, mosquitto: Broker) -> None:  # type: ignore[no-untyped-def]
    async with running_hub(settings_for("embedded"), mosquitto) as run:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTHUB_")}
        sim = subprocess.Popen(
            [SMARTHUB, "simulate", "--mqtt", mosquitto.url(DEVICE_USER, DEVICE_PASSWORD), "--root", run.root,
             "--site", run.site, "--devices", "8", "--seed", "4", "--speed", "10"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await eventually(lambda: _all_online(run, 8), timeout=30, what="8 simulated devices online")
            sim.send_signal(signal.SIGKILL)
            sim.wait(10)

            async def all_offline() -> bool:
                listed = await devices(run)
                return len(listed) == 8 and not any(d["online"] for d in listed)

            await eventually(all_offline, timeout=15, what="every device offline by its will")
        finally:
            if sim.poll() is None:
                sim.kill()
    # The will is retained: a fresh subscriber sees the device offline.
    retained = await asyncio.to_thread(read_retained, mosquitto, f"{run.root}/{run.site}/+/+/state", 1.0)
    assert retained and all(orjson.loads(p) == {"online": False} for p in retained.values())


def _simulate(broker: Broker, root: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTHUB_")}
    return subprocess.Popen(
        [SMARTHUB, "simulate", "--mqtt", broker.url(DEVICE_USER, DEVICE_PASSWORD), "--root", root, "--site", "sunshine",
         "--devices", "8", "--seed", "4", "--speed", "10", *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _states(broker: Broker, root: str) -> dict[str, object]:
    retained = read_retained(broker, f"{root}/sunshine/+/+/state", 1.0)
    return {topic: orjson.loads(payload)["online"] for topic, payload in retained.items()}


def test_a_simulator_whose_duration_ends_leaves_its_devices_offline(mosquitto: Broker, root: str) -> None:
    """A clean DISCONNECT sends no last will: the simulator must say offline itself, or the wall shows gone
    devices online for ever (the retained state)."""
    sim = _simulate(mosquitto, root, "--duration", "30")  # 30 simulated seconds: 3 s at speed 10
    assert sim.wait(30) == 0, sim.stderr.read() if sim.stderr else ""
    states = _states(mosquitto, root)
    assert len(states) == 8 and set(states.values()) == {False}, states


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_simulator_stopped_by_a_signal_leaves_its_devices_offline(mosquitto: Broker, root: str,
                                                                    sig: signal.Signals) -> None:
    sim = _simulate(mosquitto, root)
    try:
        deadline = time.monotonic() + 30
        while len(states := _states(mosquitto, root)) < 8 or not all(states.values()):
            assert time.monotonic() < deadline and sim.poll() is None, f"not all 8 online: {states}"
        sim.send_signal(sig)
        assert sim.wait(20) == 0, sim.stderr.read() if sim.stderr else ""
    finally:
        if sim.poll() is None:
            sim.kill()
    states = _states(mosquitto, root)
    assert len(states) == 8 and set(states.values()) == {False}, states
