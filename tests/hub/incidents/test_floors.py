"""The floor band of a throw, from the box top of its first detection and the camera's floor marks: never a guess
where the marks do not reach."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.incidents.floors import floor_band
from hub.registry import Device

pytestmark = pytest.mark.unit

# A 1080-row frame of an 18-storey facade seen from below: the floors shrink towards the top (perspective).
MARKS = [(1000.0, 1), (820.0, 4), (600.0, 8), (420.0, 12), (300.0, 16), (250.0, 19)]
"""Floor 1's slab at row 1000, ..., the roof line (floor 18 + 1) at row 250."""


def test_a_box_top_between_two_marks_is_interpolated_and_the_band_reaches_one_floor_up() -> None:
    band = floor_band(710.0, MARKS)  # half-way between floor 4 (820) and floor 8 (600): level 6.0
    assert (band.low, band.high, band.estimate) == (6, 7, 6.0)
    assert band.to_json()["band"] == "6-7"
    assert floor_band(655.0, MARKS).estimate == 7.0 and floor_band(656.0, MARKS).low == 6


def test_a_box_top_on_a_mark_is_that_floor() -> None:
    assert floor_band(420.0, MARKS).low == 12
    assert floor_band(1000.0, MARKS).low == 1


def test_the_top_floor_is_bounded_by_the_roof_line() -> None:
    band = floor_band(255.0, MARKS)  # just under the roof line: floor 18, nothing above it
    assert (band.low, band.high) == (18, 18) and band.to_json()["band"] == "18"
    assert floor_band(250.0, MARKS).low == 18  # on the roof line itself: still the top floor


@pytest.mark.parametrize(("top", "marks", "why"), [
    (500.0, [], "no floor calibration"),
    (500.0, [(600.0, 8)], "no floor calibration"),
    (None, MARKS, "no start height"),
    (100.0, MARKS, "outside the calibrated rows"),  # above the roof line: the sky, or a bird
    (1050.0, MARKS, "outside the calibrated rows"),  # below floor 1's slab
    (float("nan"), MARKS, "no start height"),
])
def test_without_marks_that_reach_it_the_band_is_unknown_never_a_guess(
        top: float | None, marks: list[tuple[float, int]], why: str) -> None:
    band = floor_band(top, marks)
    assert not band.known and band.to_json()["band"] == "unknown" and band.estimate is None
    assert why in band.reason


def test_the_registry_keeps_marks_sorted_and_refuses_marks_that_cannot_be_a_facade() -> None:
    camera = Device(site="s", kind="camera", device="c", floor_calibration=[[250, 19], [1000, 1], [600, 8]])
    assert camera.floor_calibration == [(250.0, 19), (600.0, 8), (1000.0, 1)]
    with pytest.raises(ValidationError, match="higher floors at smaller image_y"):
        Device(site="s", kind="camera", device="c", floor_calibration=[[250, 1], [1000, 19]])  # upside down
    with pytest.raises(ValidationError, match="its own row"):
        Device(site="s", kind="camera", device="c", floor_calibration=[[500, 3], [500, 4]])
    with pytest.raises(ValidationError, match="never negative"):
        Device(site="s", kind="camera", device="c", floor_calibration=[[-5, 3], [500, 1]])
