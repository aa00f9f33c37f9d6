"""The meter kind's own rules: a leak is water that never pauses; a register never runs backwards unannounced."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pytest

from devices.base import Accepted
from devices.meter import KIND, REGISTER_REGRESSED, Refused, Settings, leak_suspected, register_check
from devices.rules import Clear, Raise
from simulators.base import CHINA

pytestmark = pytest.mark.unit

MIN_MS = 60_000
HOUR_MS = 3_600_000


def china_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=CHINA).timestamp() * 1000)


class Meter:
    """One water meter fed to a rule as the engine would: live telemetry merged, one memory, a clock."""

    def __init__(self, start: str, utility: str = "water", t: Settings | None = None) -> None:
        self.now_ms = china_ms(start)
        self.telemetry: dict[str, Any] = {"utility": utility}
        self.memory: dict[str, Any] = {}
        self.t = t or Settings()

    def message(self, channel: str, payload: dict[str, Any]) -> Accepted:
        model = KIND.validate(channel, orjson.dumps(payload))
        return Accepted("s1", "meter", "m1", channel, model, self.now_ms, self.now_ms, 0)

    def read(self, flow_lph: float, after_min: float = 0) -> list[Any]:
        self.now_ms += int(after_min * MIN_MS)
        msg = self.message("telemetry", {"flow_lph": flow_lph})
        self.telemetry["flow_lph"] = flow_lph
        return list(leak_suspected(msg, self.telemetry, self.memory, self.now_ms, self.t))

    def flow_for(self, minutes: int, flow_lph: float = 30) -> list[Any]:
        """Readings every 15 minutes over `minutes`; what the last one gave."""
        intents: list[Any] = []
        for _ in range(minutes // 15):
            intents = self.read(flow_lph, after_min=15)
        return intents


def test_water_flowing_past_the_window_raises_a_leak_and_a_pause_clears_it() -> None:
    meter = Meter("2026-11-22T09:00:00")
    assert meter.read(30) == []
    for _ in range(7):  # every 15 minutes up to 1 h 45 min
        assert meter.read(30, after_min=15) == []
    intents = meter.read(28, after_min=15)  # 2 h without a pause
    assert [type(i) for i in intents] == [Raise] and intents[0].code == "leak_suspected"
    assert "2.0 h" in (intents[0].detail or "")
    assert meter.read(0, after_min=15) == [Clear("leak_suspected")]
    assert meter.read(30, after_min=15) == [], "a new flow starts a new window"


def test_a_pause_restarts_the_window() -> None:
    meter = Meter("2026-11-22T09:00:00")
    meter.read(30)
    meter.flow_for(105)
    assert meter.read(0, after_min=5) == [Clear("leak_suspected")]
    assert meter.read(30, after_min=5) == []
    assert meter.flow_for(105) == [], "105 minutes since the pause: under the 2 h window"
    assert meter.flow_for(15)


def test_silence_is_not_proof_that_the_water_kept_flowing() -> None:
    meter = Meter("2026-11-22T09:00:00")
    meter.read(30)
    assert meter.read(30, after_min=31) == [] and meter.read(30, after_min=31) == []
    assert meter.read(30, after_min=61) == [], "an hour's gap (over max_gap_s) restarts the window"


def test_flow_through_the_whole_night_window_raises_even_under_a_longer_window() -> None:
    long = Settings(leak_after_s=12 * 3600)
    meter = Meter("2026-11-23T00:50:00", t=long)
    meter.read(8)
    for _ in range(16):  # to 04:50
        assert meter.read(8, after_min=15) == []
    intents = meter.read(8, after_min=10)  # 05:00
    assert intents and "night" in (intents[0].detail or "")


def test_a_flow_starting_inside_the_night_waits_for_the_next_night_or_the_window() -> None:
    long = Settings(leak_after_s=12 * 3600)
    meter = Meter("2026-11-23T01:30:00", t=long)
    meter.read(8)
    for _ in range(14):  # to 05:00: began after 01:00, so not through the whole night window
        assert meter.read(8, after_min=15) == []


def test_only_water_meter_telemetry_with_flow_counts() -> None:
    meter = Meter("2026-11-22T09:00:00", utility="electricity")
    meter.read(30)
    assert meter.read(30, after_min=180) == []
    water = Meter("2026-11-22T09:00:00")
    water.read(30)
    event = water.message("event", {"type": "fault", "code": "low_battery", "active": True})
    assert list(leak_suspected(event, water.telemetry, water.memory, water.now_ms, water.t)) == []
    water.now_ms += 3 * HOUR_MS
    reading_only = water.message("telemetry", {"reading": 12.5})
    assert list(leak_suspected(reading_only, water.telemetry, water.memory, water.now_ms, water.t)) == []


def test_an_older_reading_relayed_late_changes_nothing() -> None:
    meter = Meter("2026-11-22T09:00:00")
    meter.read(30)
    meter.flow_for(60)
    assert meter.read(0, after_min=-10) == [], "a zero from before the last reading does not end the flow"
    assert meter.flow_for(60) == [] and meter.read(30, after_min=15), "2 h 5 min since the flow began"


def test_the_kind_declares_its_rule_its_settings_and_a_leak_as_a_work_order() -> None:
    assert leak_suspected in KIND.rules and KIND.settings is Settings
    assert "leak_suspected" in KIND.work_orders


class Register:
    def __init__(self) -> None:
        self.meter = Meter("2026-11-22T09:00:00", utility="electricity")

    def send(self, channel: str, after_min: float = 15, **payload: Any) -> Refused | None:
        self.meter.now_ms += int(after_min * MIN_MS)
        return register_check(self.meter.message(channel, payload), self.meter.memory)


def test_a_register_that_runs_backwards_is_refused_until_a_replacement_is_announced() -> None:
    register = Register()
    assert register.send("telemetry", reading=100.0) is None
    assert register.send("telemetry", reading=100.0) is None, "standing still is fine"
    refused = register.send("telemetry", reading=99.5)
    assert refused is not None and refused.reason == REGISTER_REGRESSED and "99.5" in refused.detail
    assert register.send("telemetry", reading=99.6) is not None, "the refused reading was not taken"
    assert register.send("telemetry", reading=101.0) is None
    assert register.send("event", type="replaced", old_reading=101.2, new_reading=0.0) is None
    assert register.send("telemetry", reading=0.3) is None
    assert register.send("telemetry", reading=0.2) is not None


def test_a_late_reading_from_before_the_latest_is_not_judged() -> None:
    register = Register()
    register.send("telemetry", reading=100.0)
    register.send("event", type="replaced", old_reading=100.5, new_reading=0.0)
    assert register.send("telemetry", after_min=-20, reading=100.4) is None, "the old meter's last, relayed late"
    assert register.send("telemetry", after_min=30, reading=0.1) is None


def test_messages_without_a_reading_pass() -> None:
    register = Register()
    register.send("telemetry", reading=100.0)
    assert register.send("telemetry", power_kw=1.2) is None
    assert register.send("event", type="fault", code="overload", active=True) is None


def test_the_wall_counts_meters_online_per_utility_and_open_leaks() -> None:
    from devices.base import LiveDevice
    from devices.meter import on_the_wall
    meters = [LiveDevice(True, False, {"utility": "water"}),
              LiveDevice(True, True, {"utility": "water"}, {"leak_suspected": {}}.keys()),
              LiveDevice(False, False, {"utility": "water"}, ("leak_suspected",)),  # offline: still leaking
              LiveDevice(True, True, {"utility": "electricity"}, ("relay_tripped",)),
              LiveDevice(False, False, {"utility": "electricity"}),
              LiveDevice(True, False, {}),  # no telemetry yet: utility unknown
              LiveDevice(True, False, {"utility": "water"}, (), ("leak_suspected",))]  # the hub's rule raised it
    assert on_the_wall(meters, []) == {"water_online": 3, "electricity_online": 1, "open_leaks": 3}
    assert KIND.overview is not None and KIND.overview.live is on_the_wall and not KIND.overview.today
    assert set(KIND.overview.today_use) == {"water_today", "electricity_today"}
