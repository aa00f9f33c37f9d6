"""A seeded community (小区): buildings with elevators, doors and household meters, gates, cameras,
chargers, plus scripted incidents (scenarios) on top of normal traffic.

Which kinds there are, their shares and names come from `simulators.kinds`; nothing here names a kind
but the scenarios, which script particular incidents.
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from hub.registry import Device, RegistryFile, Site
from simulators.base import SimDevice
from simulators.charger import MAX_KW
from simulators.kinds import SIMULATORS

SHARES = {name: sim.share for name, sim in SIMULATORS.items()}
"""How a community's devices divide between kinds (every kind gets at least one)."""
DEVICES_PER_BUILDING = 6

SITE_NAMES = {"sunshine": "阳光花园", "moonlight": "明月苑", "riverside": "滨江花园"}
"""Display names of the simulated sites we ship (others show their slug)."""

SCENARIOS: dict[str, str] = {
    "trapped_passenger": "an elevator stops between floors with a passenger inside; rescued after 8 minutes",
    "door_forced_at_night": "a building door is forced open at 02:00",
    "charger_fault": "a charging car overheats its charger (high_temperature), which goes faulted for 10 minutes",
    "high_altitude_throw": "a facade camera sees an object thrown from a high floor",
    "gate_stuck": "a barrier arm jams half-open for 5 minutes",
    "mass_offline": "a building loses power: its devices drop off (last will) and come back after 3 minutes",
}
SCENARIO_DELAY_MS = 60_000
"""Scenarios start this long after the simulation, once devices are up and talking."""


@dataclass
class Community:
    site: str
    devices: list[SimDevice]
    down: set[int] = field(default_factory=set)
    """Indexes of devices without power right now (mass_offline)."""

    def of(self, kind: str) -> list[SimDevice]:
        return [d for d in self.devices if d.kind_name == kind]


def load_layout(path: Path) -> tuple[dict[str, int], int | None]:
    """A layout file: how many devices of each kind, and optionally how many buildings.

        buildings = 12
        [devices]
        elevator = 24
        access = 24
        camera = 30
        charger = 40
        gate = 4
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"layout {path}: {exc}") from None
    counts = data.get("devices", {})
    unknown = set(counts) - set(SHARES)
    if unknown or not all(isinstance(n, int) and n >= 0 for n in counts.values()) or not sum(counts.values()):
        raise ValueError(f"layout {path}: [devices] needs counts of {', '.join(SHARES)}"
                         + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else ""))
    buildings = data.get("buildings")
    if buildings is not None and (not isinstance(buildings, int) or buildings < 1):
        raise ValueError(f"layout {path}: buildings must be a positive whole number")
    return counts, buildings


def build(site: str, seed: int, count: int = 100, counts: dict[str, int] | None = None,
          buildings: int | None = None) -> Community:
    """A community of `count` devices spread over the kinds (or exactly `counts`) and buildings;
    the same seed gives the same community."""
    if counts is None:
        if count < len(SHARES):
            raise ValueError(f"a community needs at least {len(SHARES)} devices, one of each kind")
        counts = {kind: max(1, int(count * share)) for kind, share in SHARES.items()}
        counts[max(SHARES, key=SHARES.__getitem__)] += count - sum(counts.values())  # the rest to the commonest
    buildings = buildings or max(1, sum(counts.values()) // DEVICES_PER_BUILDING)
    devices: list[SimDevice] = []
    for kind in sorted(counts):
        sim = SIMULATORS[kind]
        for n in range(1, counts.get(kind, 0) + 1):
            building = sim.building(n, buildings)
            name = f"b{building}-{sim.short}{n}" if building else f"{sim.short}-{n}"
            rng = random.Random(f"{seed}:{site}:{name}")
            devices.append(sim.make(site=site, device=name, rng=rng, building=building, number=n,
                                    buildings=buildings))
    return Community(site, devices)


def registry_of(community: Community) -> RegistryFile:
    """The registry a hub needs to place the community's devices (buildings, names) and to know the
    site's power cap: a transformer sized for half the chargers at full power (orderly charging)."""
    chargers = len(community.of("charger"))
    site = Site(name=SITE_NAMES.get(community.site), power_cap_kw=round(chargers * MAX_KW / 2, 1) or None)
    seen = sightlines(community)
    devices = [Device(site=community.site, kind=d.kind_name, device=d.device, building=d.building,
                      **({"sees": seen[d.device]} if d.device in seen else {}), **d.registry_fields())
               for d in community.devices]
    return RegistryFile(sites={community.site: site}, devices=devices)


def sightlines(community: Community) -> dict[str, list[str]]:
    """device -> what it sees: a kind that `sees` another looks at that kind's devices in its own building,
    the nth of one at the nth of the other (round again when there are fewer), so that a building door's
    fault and its camera's detections are one incident on the wall."""
    out: dict[str, list[str]] = {}
    for name, sim in SIMULATORS.items():
        if sim.sees is None:
            continue
        for building in sorted({d.building for d in community.of(name) if d.building is not None}):
            watchers = [d.device for d in community.of(name) if d.building == building]
            watched = [d.device for d in community.of(sim.sees) if d.building == building]
            for i, device in enumerate(watchers):
                if watched:
                    out[device] = [watched[i % len(watched)]]
    return out


def plan(community: Community, scenario: str, start_ms: int) -> list[SimDevice]:
    """Attach a scenario's scripted actions to devices; returns the devices that go offline (mass_offline)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}")
    at = start_ms + SCENARIO_DELAY_MS
    first = {kind: devices[0] for kind in SHARES if (devices := community.of(kind))}
    needs = {"trapped_passenger": "elevator", "door_forced_at_night": "access", "charger_fault": "charger",
             "high_altitude_throw": "camera", "gate_stuck": "gate", "mass_offline": "elevator"}[scenario]
    if needs not in first:
        raise ValueError(f"scenario {scenario} needs at least one {needs}")
    if scenario == "trapped_passenger":
        first["elevator"].forced.append((at, "trapped_passenger", {}))
    elif scenario == "door_forced_at_night":
        night = at + ((2 - ((at / 3_600_000 + 8) % 24)) % 24) * 3_600_000
        first["access"].forced.append((int(night), "door_forced", {}))
    elif scenario == "charger_fault":
        first["charger"].forced.append((at, "overheat", {}))
    elif scenario == "high_altitude_throw":
        first["camera"].forced.append((at, "detect", {"label": "high_altitude_throw", "zone": "facade"}))
    elif scenario == "gate_stuck":
        first["gate"].forced.append((at, "gate_stuck", {}))
    elif scenario == "mass_offline":
        building = first["elevator"].building
        return [d for d in community.devices if d.building == building]
    return []
