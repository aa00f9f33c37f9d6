"""Simulated AI camera: detections that open, update and end, one `id` through their phases.

Everyday labels (people, vehicles) are frequent; the ones a command center cares
about are rare, as they are on site: a throw from a high floor (高空抛物) is a
once-in-weeks event for one camera, with a snapshot and a clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulators.base import Emit, SimDevice, SimKind, in_buildings, plain

RATES_PER_HOUR = {
    "person": 4.0, "vehicle": 3.0, "loitering": 0.15, "illegal_parking": 0.3, "fire_lane_blocked": 0.05,
    "ebike_in_elevator": 0.1, "crowd": 0.05, "fall": 0.01, "intrusion": 0.02, "smoke": 0.005, "fire": 0.001,
    "high_altitude_throw": 0.005,
}
ZONES = ["entrance", "car-park", "fire-lane", "facade", "playground", "lift-lobby"]
TICK_MS = 10_000


@dataclass
class Open:
    event_id: str
    label: str
    zone: str
    score: float
    ends_ms: int
    track: str


@dataclass
class Camera(SimDevice):
    kind_name: str = "camera"
    open: list[Open] = field(default_factory=list)
    last_ms: int = 0
    last_telemetry_ms: int = 0

    def behave(self, now_ms: int) -> tuple[list[Emit], int]:
        dt_ms = now_ms - self.last_ms if self.last_ms else TICK_MS
        self.last_ms = now_ms
        out: list[Emit] = []
        for d in list(self.open):
            if now_ms >= d.ends_ms:
                self.open.remove(d)
                out.append(self._detection(now_ms, d, "end"))
            else:
                d.score = round(min(0.99, d.score + self.rng.uniform(-0.05, 0.08)), 3)
                out.append(self._detection(now_ms, d, "update"))
        for label, rate in RATES_PER_HOUR.items():
            for _ in range(self.poisson(rate, dt_ms)):
                out.append(self.detect(now_ms, label))
        if now_ms - self.last_telemetry_ms >= 300_000:
            self.last_telemetry_ms = now_ms
            out.append(self.telemetry(now_ms, recording=True, fps=25.0))
        return out, now_ms + TICK_MS

    def detect(self, now_ms: int, label: str, zone: str | None = None) -> Emit:
        lasts = 3_000 if label == "high_altitude_throw" else self.rng.randint(10_000, 120_000)
        d = Open(self._new_id("d"), label, zone or self.rng.choice(ZONES), round(self.rng.uniform(0.6, 0.95), 3),
                 now_ms + lasts, f"t{self.rng.getrandbits(24):06x}")
        self.open.append(d)
        return self._detection(now_ms, d, "start")

    def _detection(self, now_ms: int, d: Open, phase: str) -> Emit:
        media = {"snapshot": f"http://nvr.local/{self.device}/{d.event_id}.jpg"}
        if d.label in ("high_altitude_throw", "fire", "smoke", "fall"):
            media["clip"] = f"http://nvr.local/{self.device}/{d.event_id}.mp4"
        return self.event(now_ms, "detection", event_id=d.event_id, label=d.label, phase=phase, score=d.score,
                          zone=d.zone, track=d.track, **media)

    def scenario(self, now_ms: int, action: str, **args: Any) -> list[Emit]:
        if action == "detect":
            return [self.detect(now_ms, args["label"], args.get("zone"))]
        return super().scenario(now_ms, action, **args)


SIM = SimKind("camera", share=0.2, short="cam", make=plain(Camera), building=in_buildings, sees="access")
