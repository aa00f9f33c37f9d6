"""The log gate: the first line per key per interval is written, the rest only counted."""

from __future__ import annotations

import pytest

from hub.ratelog import Held, RateGate

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_key_per_interval_then_the_count_of_those_held_back() -> None:
    clock = Clock()
    gate = RateGate(10.0, clock)
    assert gate.admit("not_json") == (True, None)
    for _ in range(1234):
        clock.now += 0.001
        assert gate.admit("not_json") == (False, None)
    assert gate.admit("invalid") == (True, None)  # each key has its own window
    assert gate.due() == []  # the window is not over yet
    clock.now = 110.5
    write, held = gate.admit("not_json")
    assert write and held == Held("not_json", 1234, 10.5)
    assert gate.admit("not_json") == (False, None)  # a new window began with that line


def test_a_flood_that_stops_is_reported_once_by_due_and_quiet_keys_are_forgotten() -> None:
    clock = Clock()
    gate = RateGate(10.0, clock)
    gate.admit("not_json")
    gate.admit("not_json")
    gate.admit("not_json")
    gate.admit("invalid")  # one line, nothing held back
    clock.now += 12
    assert gate.due() == [Held("not_json", 2, 12.0)]
    assert gate.due() == []  # reported once
    assert gate.admit("not_json") == (False, None)  # the summary was this window's line
    clock.now += 10
    assert gate.due() == [Held("not_json", 1, 10.0)]
    clock.now += 10
    assert gate.due() == [] and gate._windows == {}
    assert gate.admit("invalid") == (True, None)
