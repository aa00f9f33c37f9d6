"""Simulated household meters (水电抄表到户): a water and an electricity meter per household.

Households draw water and power on a daily pattern (a morning and an evening peak, quiet
nights). A few water meters leak (a running cistern: a small flow that never stops); some
of those detect it themselves and say so, the others leave it to the hub's rule. One
meter of a community is replaced during the run. Meters are read by concentrators
(集中器), 50 meters each within a building: every meter of a concentrator is read at the
same moments, every 15 minutes, so the hub sees the bursts a real concentrator sends.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Any

from devices.meter import Relay, Valve
from simulators.base import Emit, SimDevice, SimKind, daily

READ_EVERY_MS = 15 * 60_000
METERS_PER_CONCENTRATOR = 50
HOUSEHOLDS_PER_FLOOR = 2
FLOORS_PER_UNIT = 6
WATER_L_PER_PERSON_H = [1, .5, .3, .3, .5, 2, 8, 14, 10, 5, 4, 5, 7, 5, 3, 3, 4, 6, 10, 12, 11, 8, 5, 2]
"""Litres per person per hour through the day: about 130 L a day, peaks at 07:00-08:00 and 19:00-21:00."""
POWER_KW = [.15, .12, .12, .12, .12, .15, .4, .8, .5, .3, .3, .35, .5, .35, .3, .3, .4, .8, 1.3, 1.5, 1.4, 1.1,
            .6, .25]
"""A household's mean power through the day."""
TAP_LPH = (240.0, 480.0)
"""A running tap or shower: the flow a reading sees while someone draws water."""
LEAKS = 0.04
"""Share of water meters that leak, besides those in `LEAKING`."""
LEAKING = {3: True, 7: False}
"""Meters (by number within the kind) that always leak: does the meter detect it itself? (the hub must, else)"""
LOW_BATTERY_PCT = 10.0
REPLACED_NUMBER = 2
"""The meter (by number within the kind) that is swapped during the run."""
REPLACED_AFTER_MS = 30 * 60_000
TRIPS_PER_HOUR = 1 / 2000
"""Relay trips (跳闸) per household and hour: a kettle and a heater on one circuit."""


def place(number: int, buildings: int) -> tuple[str, int, int, int, str]:
    """(building, unit, floor, meter index in the building, room) of a meter: meters come in pairs (water,
    electricity) per household, households fill a building's units floor by floor."""
    household = (number - 1) // 2
    building = household % buildings + 1
    in_building = household // buildings
    per_unit = FLOORS_PER_UNIT * HOUSEHOLDS_PER_FLOOR
    unit, rest = in_building // per_unit + 1, in_building % per_unit
    floor, door = rest // HOUSEHOLDS_PER_FLOOR + 1, rest % HOUSEHOLDS_PER_FLOOR + 1
    return str(building), unit, floor, in_building * 2 + (number - 1) % 2, f"{floor}{door:02d}"


@dataclass
class Meter(SimDevice):
    kind_name: str = "meter"
    utility: str = "water"
    unit: int = 1
    floor: int = 1
    room: str = "101"
    """户号: personal data, for the registry only (never in a topic or a payload)."""
    concentrator: str = ""
    phase_ms: int = 0
    persons: int = 2
    reading: float = 0.0
    leak_lph: float = 0.0
    detects_leaks: bool = False
    replace_after_ms: int | None = None
    replace_at_ms: int | None = None
    valve: str = "open"
    relay: str = "on"
    cut: bool = False
    """The supply was cut by command (stays cut, unlike a trip that resets)."""
    battery_pct: float = 100.0
    signal_dbm: float = -90.0
    last_ms: int = 0

    def start(self, now_ms: int) -> tuple[list[Emit], int]:
        emits, wake = super().start(now_ms)
        if self.replace_after_ms is not None and self.replace_at_ms is None:
            self.replace_at_ms = now_ms + self.replace_after_ms
        if self.leak_lph and self.detects_leaks:  # leaking since before the run: the meter already knows
            emits += self.raise_fault(now_ms, "leak_suspected", 10 * 365 * 86_400_000,
                                      f"flow never below {self.leak_lph:.0f} L/h for 24 h")
        return emits, wake

    def _next_read(self, now_ms: int) -> int:
        return now_ms - (now_ms - self.phase_ms) % READ_EVERY_MS + READ_EVERY_MS

    def behave(self, now_ms: int) -> tuple[list[Emit], int]:
        dt_h = (now_ms - self.last_ms) / 3_600_000 if self.last_ms else 0.0
        self.last_ms = now_ms
        out: list[Emit] = []
        if self.replace_at_ms is not None and now_ms >= self.replace_at_ms:
            self.replace_at_ms = self.replace_after_ms = None
            out.append(self.event(now_ms, "replaced", old_reading=round(self.reading, 3), new_reading=0.0))
            self.reading = 0.0
            self.battery_pct = 100.0
            if "low_battery" in self.faults:  # the new meter's battery is new: the fault clears this step
                self.faults["low_battery"].until_ms = now_ms
        out += self._water(now_ms, dt_h) if self.utility == "water" else self._electricity(now_ms, dt_h)
        return out, self._next_read(now_ms)

    def _water(self, now_ms: int, dt_h: float) -> list[Emit]:
        open_ = self.valve == "open"
        use_lph = daily(now_ms, WATER_L_PER_PERSON_H) * self.persons * self.rng.lognormvariate(0, 0.3)
        flow = 0.0
        if open_:
            self.reading += (use_lph + self.leak_lph) * dt_h / 1000
            drawing = self.rng.random() < use_lph / sum(TAP_LPH) * 2
            flow = (self.rng.uniform(*TAP_LPH) if drawing else 0.0) + self.leak_lph
        self.battery_pct = max(0.0, self.battery_pct - dt_h * 0.0005)
        out = [self.telemetry(now_ms, utility="water", reading=round(self.reading, 3), flow_lph=round(flow, 1),
                              valve=self.valve, battery_pct=round(self.battery_pct, 1),
                              signal_dbm=round(self.signal_dbm + self.rng.gauss(0, 2), 1))]
        if self.battery_pct < LOW_BATTERY_PCT:  # until the battery is changed (here: a replacement)
            out += self.raise_fault(now_ms, "low_battery", 365 * 86_400_000, f"{self.battery_pct:.0f} %")
        return out

    def _electricity(self, now_ms: int, dt_h: float) -> list[Emit]:
        out: list[Emit] = []
        if self.relay == "on" and self.poisson(TRIPS_PER_HOUR, int(dt_h * 3_600_000)):
            self.relay = "off"
            out += self.raise_fault(now_ms, "relay_tripped", 20 * 60_000, "breaker tripped")
        elif self.relay == "off" and "relay_tripped" not in self.faults and not self.cut:
            self.relay = "on"  # a trip's fault has cleared: someone reset the breaker
        power = daily(now_ms, POWER_KW) * self.rng.lognormvariate(0, 0.35) if self.relay == "on" else 0.0
        self.reading += power * dt_h
        out.insert(0, self.telemetry(now_ms, utility="electricity", reading=round(self.reading, 2),
                                     power_kw=round(power, 3), relay=self.relay,
                                     signal_dbm=round(self.signal_dbm + self.rng.gauss(0, 2), 1)))
        return out

    def apply(self, now_ms: int, op: str, args: Any) -> tuple[str | None, list[Emit]]:
        if op == "valve" and isinstance(args, Valve):
            if self.utility != "water":
                return "an electricity meter has no valve", []
            self.valve = args.state
        elif op == "relay" and isinstance(args, Relay):
            if self.utility != "electricity":
                return "a water meter has no relay", []
            self.relay = args.state
            self.cut = args.state == "off"
        else:
            return f"{op} is not simulated", []
        return None, self._water(now_ms, 0.0) if self.utility == "water" else self._electricity(now_ms, 0.0)

    def registry_fields(self) -> dict[str, Any]:
        """Where the meter is: its unit (单元), floor and room (户号; the hub masks it for viewers)."""
        return {"unit": str(self.unit), "floor": self.floor, "room": self.room}


def make(site: str, device: str, rng: random.Random, building: str | None, number: int, buildings: int) -> Meter:
    _, unit, floor, index, room = place(number, buildings)
    concentrator = f"b{building}-dcu{index // METERS_PER_CONCENTRATOR + 1}"
    water = number % 2 == 1
    household = random.Random(f"{site}:{building}:{unit}:{room}")  # both meters of a home agree on its size
    leaks = water and (number in LEAKING or rng.random() < LEAKS)
    return Meter(
        site=site, device=device, rng=rng, building=building, utility="water" if water else "electricity",
        unit=unit, floor=floor, room=room, concentrator=concentrator, persons=household.choice((1, 2, 2, 3, 3, 4, 5)),
        phase_ms=zlib.crc32(f"{site}:{concentrator}".encode()) % READ_EVERY_MS,
        reading=round(rng.uniform(20, 900) if water else rng.uniform(500, 20000), 3),
        leak_lph=round(rng.uniform(4, 20), 1) if leaks else 0.0,
        detects_leaks=LEAKING.get(number, leaks and rng.random() < 0.5),
        replace_after_ms=REPLACED_AFTER_MS if number == REPLACED_NUMBER else None,
        battery_pct=round(rng.uniform(8, 100), 1) if water else 100.0, signal_dbm=round(rng.uniform(-105, -75), 1),
    )


SIM = SimKind("meter", share=0.08, short="m", make=make, building=lambda n, buildings: place(n, buildings)[0])
