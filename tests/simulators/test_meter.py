"""Simulated household meters: daily patterns, concentrator bursts, leaks the rule finds, one replacement."""

from __future__ import annotations

import io
import tomllib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

import simulators
from devices import REGISTRY
from devices.base import Accepted
from devices.meter import KIND, leak_suspected, register_check
from hub import topics
from hub.ingest.decode import decode
from hub.registry import RegistryFile
from simulators.base import hour_of_day
from simulators.community import build, registry_of
from simulators.kinds import SIMULATORS
from simulators.meter import METERS_PER_CONCENTRATOR, Meter
from simulators.runner import run_to_file

pytestmark = pytest.mark.unit

START = 1_780_272_000_000  # 2026-06-01T08:00+08:00
DAY_MS = 24 * 3_600_000


def test_every_kind_has_a_simulator_registered_in_one_place() -> None:
    modules = {p.stem for p in Path(simulators.__file__).parent.glob("*.py")}
    declaring = {m for m in modules if "\nSIM = SimKind(" in (Path(simulators.__file__).parent / f"{m}.py").read_text()}
    assert declaring == set(SIMULATORS) == set(REGISTRY)
    assert all(name == sim.name for name, sim in SIMULATORS.items())


@pytest.fixture(scope="module")
def estate() -> tuple[list[Meter], list[dict[str, Any]]]:
    community = build("sunshine", 1, counts={"meter": 240}, buildings=2)
    out = io.BytesIO()
    run_to_file(community, "community", START, DAY_MS, out, [])
    return community.of("meter"), [orjson.loads(line) for line in out.getvalue().splitlines()]  # type: ignore[return-value]


def accepted(message: dict[str, Any]) -> Accepted:
    parts = topics.parse(message["topic"], "community", REGISTRY)
    payload = decode(KIND, parts.channel, orjson.dumps(message["payload"]))
    return Accepted(parts.site, parts.kind, parts.device, parts.channel, payload, message["t"], message["t"], 0)


def test_households_follow_the_day(estate: tuple[list[Meter], list[dict[str, Any]]]) -> None:
    _, day = estate
    used: dict[str, Counter[int]] = defaultdict(Counter)
    last: dict[str, float] = {}
    for m in day:
        payload = m["payload"]
        if "reading" not in payload:
            continue
        if m["topic"] in last and payload["reading"] >= last[m["topic"]]:
            used[payload["utility"]][int(hour_of_day(m["t"]))] += payload["reading"] - last[m["topic"]]
        last[m["topic"]] = payload["reading"]
    for utility, (morning, evening) in {"water": (7, 19), "electricity": (7, 19)}.items():
        night = used[utility][3]
        assert used[utility][morning] > 2 * night and used[utility][evening] > 3 * night, (utility, used[utility])


def test_concentrators_read_50_meters_at_the_same_moments(estate: tuple[list[Meter], list[dict[str, Any]]]) -> None:
    meters, day = estate
    by_concentrator = Counter(m.concentrator for m in meters)
    assert max(by_concentrator.values()) == METERS_PER_CONCENTRATOR and len(by_concentrator) == 6
    concentrator = {m.device: m.concentrator for m in meters}
    moments: dict[str, set[int]] = defaultdict(set)
    started: set[str] = set()
    for m in day:
        device = m["topic"].split("/")[3]
        if m["topic"].endswith("/telemetry"):
            if device in started:  # the first reading comes at the device's own (staggered) start
                moments[concentrator[device]].add(m["t"])
            started.add(device)
    assert all(len(times) <= 96 for times in moments.values()), "one burst per 15 minutes per concentrator"
    assert len({min(times) % 900_000 for times in moments.values()}) > 1, "concentrators have their own phase"


def test_leaks_never_pause_and_the_rule_finds_them_and_only_them(
        estate: tuple[list[Meter], list[dict[str, Any]]]) -> None:
    meters, day = estate
    leaking = {m.device for m in meters if m.leak_lph}
    assert 2 <= len(leaking) <= 12, "a few leaks"
    assert any(m.detects_leaks for m in meters if m.leak_lph) and any(not m.detects_leaks for m in meters
                                                                       if m.leak_lph)
    memory: dict[str, dict[str, Any]] = defaultdict(dict)
    telemetry: dict[str, dict[str, Any]] = defaultdict(dict)
    raised: set[str] = set()
    for m in day:
        if not m["topic"].endswith("/telemetry"):
            continue
        device = m["topic"].split("/")[3]
        telemetry[device].update(m["payload"])
        msg = accepted(m)
        if any(i.code == "leak_suspected" and type(i).__name__ == "Raise"
               for i in leak_suspected(msg, telemetry[device], memory[device], m["t"])):
            raised.add(device)
    assert raised == leaking


def test_one_meter_is_replaced_and_no_register_ever_runs_backwards_unannounced(
        estate: tuple[list[Meter], list[dict[str, Any]]]) -> None:
    _, day = estate
    replaced = [m for m in day if m["payload"].get("type") == "replaced"]
    assert len(replaced) == 1 and replaced[0]["payload"]["new_reading"] == 0.0
    memory: dict[str, dict[str, Any]] = defaultdict(dict)
    refused = [m for m in day if m["topic"].split("/")[4] in ("telemetry", "event")
               and register_check(accepted(m), memory[m["topic"].split("/")[3]]) is not None]
    assert refused == []
    without = [m for m in day if m is not replaced[0]]
    memory.clear()
    refused = [m for m in without if m["topic"].split("/")[4] in ("telemetry", "event")
               and register_check(accepted(m), memory[m["topic"].split("/")[3]]) is not None]
    telemetry_topic = replaced[0]["topic"].replace("/event", "/telemetry")
    assert refused and refused[0]["topic"] == telemetry_topic, "without the event, the new register is refused"


def test_the_registry_places_meters_with_their_room_which_no_topic_names() -> None:
    """Building, unit, floor and room go to the registry (`--registry-out`); the room, personal, never into a
    device name (topics, storage tags)."""
    community = build("sunshine", 1, counts={"meter": 40, "elevator": 4}, buildings=2)
    meters = community.of("meter")
    registry = registry_of(community)
    loaded = {d.device: d for d in RegistryFile.model_validate(tomllib.loads(registry.to_toml())).devices}
    for meter in meters:
        entry = loaded[meter.device]
        assert (entry.building, entry.unit, entry.floor, entry.room) == (meter.building, str(meter.unit),
                                                                         meter.floor, meter.room)
        assert meter.room not in meter.device
    water, power = meters[0], meters[1]
    assert (water.utility, power.utility) == ("water", "electricity")
    assert (water.building, water.unit, water.room) == (power.building, power.unit, power.room), "one household"


def test_valve_and_relay_commands_cut_and_restore_a_supply() -> None:
    water, power = build("sunshine", 1, counts={"meter": 2}).of("meter")
    water.start(START)
    power.start(START)
    reply, emits = water.command(START, b'{"id": "c1", "op": "valve", "args": {"state": "closed"}}')
    assert reply == {"id": "c1", "ok": True} and emits[0][1]["valve"] == "closed" and emits[0][1]["flow_lph"] == 0
    reply, _ = water.command(START, b'{"id": "c2", "op": "relay", "args": {"state": "off"}}')
    assert reply is not None and reply["ok"] is False
    reply, emits = power.command(START, b'{"id": "c3", "op": "relay", "args": {"state": "off"}}')
    assert reply == {"id": "c3", "ok": True} and emits[0][1]["relay"] == "off" and emits[0][1]["power_kw"] == 0
    emits, _ = power.step(START + 3_600_000)
    assert all(p["relay"] == "off" for c, p in emits if c == "telemetry"), "a supply cut by command stays cut"
