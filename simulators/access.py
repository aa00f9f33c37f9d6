"""Simulated door controller with a face / card / QR terminal.

Residents pass mostly by face; a few attempts are denied (expired cards, outside
schedule); doors are sometimes held open, and people follow others through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulators.base import Emit, SimDevice, SimKind, daily, in_buildings, plain

PASSES_PER_HOUR = [2, 1, 1, 1, 2, 6, 30, 60, 45, 20, 15, 18, 22, 18, 15, 18, 30, 50, 60, 45, 30, 18, 8, 4]
METHODS = ["face"] * 70 + ["card"] * 18 + ["qr"] * 8 + ["pin", "fingerprint", "remote", "fingerprint"]
DENIALS = ["expired", "unknown", "outside_schedule", "anti_passback", "blacklisted", "other"]
TICK_MS = 15_000
TELEMETRY_EVERY_MS = 60_000


@dataclass
class Access(SimDevice):
    kind_name: str = "access"
    subjects: list[str] = field(default_factory=list)
    door: str = "closed"
    last_ms: int = 0
    last_telemetry_ms: int = 0

    def __post_init__(self) -> None:
        self.subjects = [f"p-{self.rng.getrandbits(32):08x}" for _ in range(120)]

    def behave(self, now_ms: int) -> tuple[list[Emit], int]:
        dt_ms = now_ms - self.last_ms if self.last_ms else TICK_MS
        self.last_ms = now_ms
        out: list[Emit] = []
        for _ in range(self.poisson(daily(now_ms, PASSES_PER_HOUR), dt_ms)):
            method = self.rng.choice(METHODS)
            denied = self.rng.random() < 0.04
            subject = self.rng.choice(self.subjects) if not denied or self.rng.random() < 0.5 else \
                f"u-{self.rng.getrandbits(32):08x}"
            fields: dict[str, Any] = {"method": method, "subject": subject,
                                      "result": "denied" if denied else "granted"}
            if denied:
                fields["reason"] = self.rng.choice(DENIALS)
            out.append(self.event(now_ms, "access", **fields))
            if not denied and self.rng.random() < 0.01:
                out += self.raise_fault(now_ms, "tailgating", 5_000, "two people on one pass")
            if not denied and self.rng.random() < 0.005:
                out += self.raise_fault(now_ms, "door_held_open", self.rng.randint(60_000, 400_000))
        self.door = "open" if "door_held_open" in self.faults else "closed"
        if now_ms - self.last_telemetry_ms >= TELEMETRY_EVERY_MS:
            self.last_telemetry_ms = now_ms
            out.append(self.telemetry(now_ms, door=self.door, locked=self.door == "closed"))
        return out, now_ms + TICK_MS

    def scenario(self, now_ms: int, action: str, **args: Any) -> list[Emit]:
        if action == "door_forced":
            self.door = "open"
            return [*self.raise_fault(now_ms, "door_forced", args.get("lasts_ms", 90_000), "opened without a pass"),
                    self.telemetry(now_ms, door="open", locked=True)]
        return super().scenario(now_ms, action, **args)

    def apply(self, now_ms: int, op: str, args: Any) -> tuple[str | None, list[Emit]]:
        return None, [self.event(now_ms, "access", method="remote", subject="operator", result="granted"),
                      self.telemetry(now_ms, door="closed", locked=False)]


SIM = SimKind("access", share=0.25, short="door", make=plain(Access), building=in_buildings)
