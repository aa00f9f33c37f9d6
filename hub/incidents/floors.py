"""Which floors a thrown object came from, from where a facade camera first saw it: a pure function.

A facade camera's registry entry carries `floor_calibration`, pairs `[image_y, floor]` measured once on site:
`image_y` is the pixel row, counted from the top of the frame the camera's analytics report boxes in (Frigate:
its `detect` resolution), where floor `floor`'s slab meets the facade. Between two marks the floor is
interpolated linearly, so marks on every few floors also absorb the perspective of a camera looking up. The
roof line is the mark `top floor + 1`, so the top floor is bounded too.

The track's start height is the top edge of its first box. An object is first boxed a frame or more after it
leaves the hand (5 detection frames a second fall about 0.2 s, a metre or two), so the band reaches one floor
above the floor the box top is in. Outside the marks, or without two of them, the band is `unknown`: never an
extrapolated guess. Objects thrown outwards are nearer the camera than the facade the marks are on and read a
little high for a camera below them: the band is where to start asking, not proof.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SLACK_FLOORS = 1
"""Floors above the box top's floor still in the band: the fall before the first detection."""


@dataclass(frozen=True, slots=True)
class FloorBand:
    """Floors `low`..`high` (inclusive), or unknown (both None) with the reason."""

    low: int | None
    high: int | None
    estimate: float | None
    """The interpolated floor level of the box top (5.4: four tenths up floor 5)."""
    reason: str

    @property
    def known(self) -> bool:
        return self.low is not None

    def to_json(self) -> dict[str, Any]:
        label = f"{self.low}-{self.high}" if self.known and self.low != self.high else (
            str(self.low) if self.known else "unknown")
        return {"band": label, "low": self.low, "high": self.high, "estimate": self.estimate, "reason": self.reason}


def unknown(reason: str) -> FloorBand:
    return FloorBand(None, None, None, reason)


def floor_band(top_y: float | None, calibration: Sequence[tuple[float, int]]) -> FloorBand:
    """The floors a track starting with its box top at row `top_y` came from, by the camera's marks."""
    if top_y is None or not math.isfinite(top_y):
        return unknown("the detection carries no start height")
    marks = sorted(calibration)
    if len(marks) < 2:
        return unknown("the camera has no floor calibration (at least two marks)")
    (y_top, f_top), (y_bottom, f_bottom) = marks[0], marks[-1]
    if not y_top <= top_y <= y_bottom:
        return unknown(f"start height y={top_y:g} is outside the calibrated rows {y_top:g}..{y_bottom:g}")
    for (y1, f1), (y2, f2) in zip(marks, marks[1:], strict=False):
        if y1 <= top_y <= y2:
            level = f1 + (f2 - f1) * (top_y - y1) / (y2 - y1)  # f1 > f2: rows grow downwards
            break
    floor = math.floor(level + 1e-9)
    top_floor = f_top - 1 if f_top > f_bottom else f_top  # the top mark is the roof line
    low = min(max(floor, f_bottom), top_floor)
    high = min(low + SLACK_FLOORS, top_floor)
    return FloorBand(low, high, round(level, 2),
                     f"box top at y={top_y:g} is floor level {level:.2f} by {len(marks)} marks; "
                     f"+{SLACK_FLOORS} for the fall before the first detection")
