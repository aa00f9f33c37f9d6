"""Simulated IoT elevator: trips that follow the day, door cycles, load, and faults as on site.

Mornings are a down-peak (residents leave), evenings an up-peak, nights quiet.
A trapped passenger unfolds the way it does in a real car: the car stops between
floors with someone inside, the monitoring box raises `trapped_passenger` after
its detection delay, and much later the car is levelled and the door opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulators.base import Emit, SimDevice, SimKind, daily, in_buildings, plain

CALLS_PER_HOUR = [2, 1, 1, 1, 2, 6, 25, 60, 55, 25, 18, 20, 24, 20, 16, 18, 25, 45, 60, 50, 35, 20, 10, 4]
FLOOR_S = 2.5
DOOR_S = 6.0
TICK_MOVING_MS = 5_000
TICK_IDLE_MS = 30_000
TRAPPED_DETECT_MS = 25_000


@dataclass
class Elevator(SimDevice):
    kind_name: str = "elevator"
    floors: int = 18
    floor: int = 1
    target: int | None = None
    position: float = 1.0
    riders: int = 0
    mode: str = "normal"
    trips: int = 0
    door_cycles: int = 0
    last_ms: int = 0
    trapped_until: int | None = None
    door_open_until: int = 0
    mode_until: int = 0
    parks_at_night: bool = False

    def __post_init__(self) -> None:
        self.trips = self.rng.randint(20_000, 400_000)
        self.door_cycles = self.trips * 2 + self.rng.randint(0, 999)
        self.floor = self.rng.choice([1, 1, 1, self.rng.randint(-1, self.floors)])
        self.position = float(self.floor)
        self.parks_at_night = self.rng.random() < 0.3  # energy saving: one car of a pair rests at night

    def _telemetry(self, now_ms: int) -> Emit:
        moving = self.target is not None and self.trapped_until is None
        direction = "idle" if not moving else ("up" if self.target > self.position else "down")  # type: ignore[operator]
        door = "open" if now_ms < self.door_open_until and not moving else "closed"
        return self.telemetry(
            now_ms, floor=self.floor, direction=direction, door=door, running=moving, speed_mps=1.75 if moving else 0.0,
            load_kg=round(self.riders * self.rng.uniform(55, 80), 1), occupied=self.riders > 0, mode=self.mode,
            trips=self.trips, door_cycles=self.door_cycles,
        )

    def behave(self, now_ms: int) -> tuple[list[Emit], int]:
        dt_ms = max(0, now_ms - self.last_ms) if self.last_ms else TICK_IDLE_MS
        self.last_ms = now_ms
        out: list[Emit] = []
        if self.trapped_until is not None:
            if now_ms >= self.trapped_until:  # rescued: level the car, open the door, let them out
                self.trapped_until = None
                self.floor = round(self.position)
                self.position, self.target, self.riders = float(self.floor), None, 0
                self.door_cycles += 1
            return [self._telemetry(now_ms)], now_ms + TICK_MOVING_MS
        if self.target is None:
            self._choose_mode(now_ms, dt_ms)
            if self.mode == "normal" and self.poisson(daily(now_ms, CALLS_PER_HOUR), dt_ms):
                self._call(now_ms)
        else:
            step = dt_ms / 1000 / FLOOR_S
            delta = self.target - self.position
            self.position = self.target if abs(delta) <= step else self.position + step * (1 if delta > 0 else -1)
            self.floor = int(round(self.position)) or 1
            if self.position == self.target:
                self.trips += 1
                self.door_cycles += 1
                self.target, self.riders = None, 0
                self.door_open_until = now_ms + int(DOOR_S * 1000)
                if self.rng.random() < 0.002:
                    out += self.raise_fault(now_ms, "door_close_fault", self.rng.randint(30_000, 600_000))
                if self.rng.random() < 0.0005:
                    out += self.raise_fault(now_ms, "ebike_in_car", 60_000, "detected by car camera")
        out.append(self._telemetry(now_ms))
        return out, now_ms + (TICK_MOVING_MS if self.target is not None else TICK_IDLE_MS)

    def _choose_mode(self, now_ms: int, dt_ms: int) -> None:
        """Night parking for some cars; now and then a maintenance visit in the small hours."""
        hour = (now_ms / 3_600_000 + 8) % 24
        if self.mode == "maintenance" and now_ms < self.mode_until:
            return
        if 1 <= hour < 5 and self.poisson(0.01, dt_ms):
            self.mode, self.mode_until = "maintenance", now_ms + 40 * 60_000
        elif self.parks_at_night and (hour >= 23 or hour < 6):
            self.mode = "parking"
        else:
            self.mode = "normal"

    def _call(self, now_ms: int) -> None:
        hour = (now_ms / 3_600_000 + 8) % 24
        leaving = 6 <= hour < 10
        self.riders = self.rng.choice([1, 1, 1, 2, 2, 3, 4])
        if leaving or self.floor > 1 and self.rng.random() < 0.5:
            self.target = 1 if self.rng.random() < 0.9 else -1
        else:
            self.target = self.rng.randint(2, self.floors)
        if self.target == self.floor:
            self.target = None
            self.riders = 0
        self.door_cycles += 1

    def scenario(self, now_ms: int, action: str, **args: Any) -> list[Emit]:
        if action == "trapped_passenger":
            self.riders = max(self.riders, 1)
            self.position = self.floor + 0.5  # between floors
            self.target = self.floor + 1
            self.trapped_until = now_ms + args.get("rescue_ms", 8 * 60_000)
            self.forced.append((now_ms + TRAPPED_DETECT_MS, "fault",
                                {"code": "trapped_passenger", "lasts_ms": args.get("rescue_ms", 8 * 60_000)
                                 - TRAPPED_DETECT_MS, "detail": "between_floors"}))
            self.forced.sort(key=lambda f: f[0])
            return [self._telemetry(now_ms)]
        return super().scenario(now_ms, action, **args)


SIM = SimKind("elevator", share=0.35, short="el", make=plain(Elevator), building=in_buildings)
