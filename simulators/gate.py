"""Simulated barrier gate with plate recognition: residents and visitors, rush hours, misreads.

Most cars are residents' (a fixed pool of plates per gate); some reads are poor
and go to manual review; a few plates are blacklisted and denied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulators.base import Emit, SimDevice, SimKind, daily, plain
from simulators.plates import plate

PASSAGES_PER_HOUR = [4, 2, 1, 1, 3, 10, 45, 110, 90, 40, 30, 35, 40, 35, 30, 35, 50, 90, 110, 70, 45, 25, 12, 6]
TICK_MS = 10_000
TELEMETRY_EVERY_MS = 60_000


OVERNIGHT_SHARE = 0.6
"""Residents' cars in the car park at night."""


@dataclass
class Gate(SimDevice):
    kind_name: str = "gate"
    residents: list[tuple[str, str]] = field(default_factory=list)
    blacklist: list[tuple[str, str]] = field(default_factory=list)
    cycles: int = 0
    barrier: str = "closed"
    last_ms: int = 0
    last_telemetry_ms: int = 0
    stuck: bool = False
    inside: list[tuple[str, str, bool]] = field(default_factory=list)
    """(plate, colour, resident) of the cars in the car park: a car leaves only after it came in."""

    def __post_init__(self) -> None:
        self.residents = [plate(self.rng) for _ in range(300)]
        self.blacklist = [plate(self.rng) for _ in range(5)]
        self.cycles = self.rng.randint(10_000, 200_000)
        self.inside = [(number, colour, True) for number, colour in self.residents
                       if self.rng.random() < OVERNIGHT_SHARE]

    def behave(self, now_ms: int) -> tuple[list[Emit], int]:
        dt_ms = now_ms - self.last_ms if self.last_ms else TICK_MS
        self.last_ms = now_ms
        out: list[Emit] = []
        if not self.stuck:
            for _ in range(self.poisson(daily(now_ms, PASSAGES_PER_HOUR), dt_ms)):
                out += self._passage(now_ms)
        if self.poisson(0.002, dt_ms):  # a loop detector acting up, every couple of weeks
            out += self.raise_fault(now_ms, "loop_detector_fault", self.rng.randint(600_000, 7_200_000))
        if now_ms - self.last_telemetry_ms >= TELEMETRY_EVERY_MS:
            self.last_telemetry_ms = now_ms
            out.append(self.telemetry(now_ms, barrier=self.barrier, cycles=self.cycles))
        return out, now_ms + TICK_MS

    def _passage(self, now_ms: int) -> list[Emit]:
        hour = (now_ms / 3_600_000 + 8) % 24
        # Mornings out, evenings in; the fuller the car park, the likelier a car leaves: it neither fills nor empties.
        base = 0.85 if 5 <= hour < 12 else 0.3
        fill = len(self.inside) / (OVERNIGHT_SHARE * len(self.residents))
        direction = "out" if self.rng.random() < min(0.97, base * fill) else "in"
        vehicle_class = "car" if self.rng.random() < 0.95 else self.rng.choice(["truck", "bus", "motorcycle"])
        if direction == "out" and self.inside:  # one of the cars inside leaves
            i = self.rng.randrange(len(self.inside))
            self.inside[i], self.inside[-1] = self.inside[-1], self.inside[i]
            number, colour, resident = self.inside.pop()
        else:
            direction = "in"
            resident = self.rng.random() < 0.75
            number, colour = self.rng.choice(self.residents) if resident else plate(self.rng,
                                                                                     vehicle_class=vehicle_class)
            if resident and any(p == number for p, _, _ in self.inside):  # that car is in already: a visitor
                resident, (number, colour) = False, plate(self.rng, vehicle_class=vehicle_class)
            if not resident and self.rng.random() < 0.02:
                number, colour = self.rng.choice(self.blacklist)
        confidence = round(min(0.999, max(0.3, self.rng.gauss(0.93, 0.08))), 3)
        if confidence < 0.6:
            colour, decision, category = "unknown", "manual", "unknown"
        elif (number, colour) in self.blacklist:
            decision, category = "denied", "blacklisted"
        else:
            decision, category = "allowed", "resident" if resident else "visitor"
        if direction == "in" and decision != "denied":
            self.inside.append((number, colour, resident))
        event_id = self._new_id("p")
        out = [self.event(now_ms, "passage", event_id=event_id, plate=number, plate_color=colour, direction=direction,
                          lane=f"{direction}-1", vehicle_class=vehicle_class, confidence=confidence,
                          decision=decision, category=category, image=f"http://{self.device}.local/snap/{event_id}.jpg")]
        if decision != "denied":
            self.cycles += 1
            out.append(self.event(now_ms + 1, "barrier", state="open"))
            out.append(self.event(now_ms + 6000, "barrier", state="closed"))
        return out

    def scenario(self, now_ms: int, action: str, **args: Any) -> list[Emit]:
        if action == "gate_stuck":
            self.stuck, self.barrier = True, "stuck"
            self.forced.append((now_ms + args.get("lasts_ms", 300_000), "unstick", {}))
            return [self.event(now_ms, "barrier", state="stuck"),
                    *self.raise_fault(now_ms, "barrier_stuck", args.get("lasts_ms", 300_000), "arm jammed half-open")]
        if action == "unstick":
            self.stuck, self.barrier = False, "closed"
            return [self.event(now_ms, "barrier", state="closed")]
        return super().scenario(now_ms, action, **args)

    def apply(self, now_ms: int, op: str, args: Any) -> tuple[str | None, list[Emit]]:
        if self.stuck:
            return "barrier is stuck", []
        self.barrier = "open" if op == "open" else "closed"
        self.cycles += op == "open"
        return None, [self.event(now_ms, "barrier", state=self.barrier)]


SIM = SimKind("gate", share=0.06, short="gate", make=plain(Gate))
