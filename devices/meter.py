"""Household water and electricity meters (水电抄表到户), read through concentrators (集中器).

One device is one meter of one utility. `reading` is the meter's cumulative register
(m³ for water, kWh for electricity); it only grows, except when the meter is replaced,
which the `replaced` event announces. A water meter may carry a valve and an electricity
meter a relay: closing one cuts a household's supply, so the commands are an admin's.

The kind's own rules live here, pure and with thresholds of the kind's own:
`leak_suspected` (water that never stops flowing) and `register_check` (a register that
runs backwards without a replacement, for the pipeline to dead-letter).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from devices.base import (
    Accepted,
    CommandArgs,
    DeviceKind,
    DevicePayload,
    EventPayload,
    FaultSpec,
    KindSettings,
    LiveDevice,
    OverviewSection,
    Refused,
    RegisterIncrease,
    Severity,
)
from devices.rules import Clear, Intent, Raise

Utility = Literal["water", "electricity"]
HOUR_MS = 3_600_000
CHINA_OFFSET_MS = 8 * HOUR_MS
"""China keeps UTC+8 all year (no daylight saving), so local hours are plain arithmetic."""


class Telemetry(DevicePayload):
    """A meter's periodic reading; every field optional, as a concentrator may relay only what it read."""

    utility: Utility | None = Field(None, description="What the meter measures")
    reading: float | None = Field(None, ge=0, description="Cumulative register: m³ (water) or kWh (electricity)")
    flow_lph: float | None = Field(None, ge=0, description="Water flowing now, litres per hour")
    power_kw: float | None = Field(None, ge=0, description="Electric power drawn now")
    valve: Literal["open", "closed"] | None = Field(None, description="Water meter's valve")
    relay: Literal["on", "off"] | None = Field(None, description="Electricity meter's supply relay")
    battery_pct: float | None = Field(None, ge=0, le=100)
    signal_dbm: float | None = Field(None, le=0, description="Radio signal at the meter (M-Bus, LoRa, NB-IoT)")


class Replaced(EventPayload):
    """The meter was swapped: the register restarts from `new_reading`."""

    type: Literal["replaced"]
    old_reading: float = Field(ge=0, description="The old meter's last register")
    new_reading: float = Field(ge=0, description="The new meter's first register")


class Valve(CommandArgs):
    state: Literal["open", "closed"]


class Relay(CommandArgs):
    state: Literal["on", "off"]


C, M, m = Severity.CRITICAL, Severity.MAJOR, Severity.MINOR
LEAK = "leak_suspected"
FAULTS = {
    LEAK: FaultSpec(M, "疑似漏水", "Leak suspected: water never stops flowing"),
    "reverse_flow": FaultSpec(m, "倒流", "Reverse flow"),
    "magnetic_tamper": FaultSpec(M, "磁干扰", "Magnetic tampering"),
    "cover_open": FaultSpec(m, "开盖", "Meter cover opened"),
    "low_battery": FaultSpec(m, "低电量", "Low battery"),
    "valve_fault": FaultSpec(M, "阀门故障", "Valve fault"),
    "relay_tripped": FaultSpec(M, "跳闸", "Relay tripped: supply cut"),
    "overload": FaultSpec(m, "过载", "Overload"),
}


class Settings(KindSettings):
    """The meter kind's thresholds (`SMARTHUB_LEAK_AFTER_S` and so on)."""

    leak_after_s: float = Field(7200.0, gt=0, description="Water flowing this long without a pause is a suspected leak")
    leak_night_start_h: int = Field(1, ge=0, le=23, description="China-time hour a night window begins: flow that "
                                    "never paused through all of it is a leak, whatever leak_after_s says")
    leak_night_end_h: int = Field(5, ge=1, le=24, description="China-time hour the night window ends")
    leak_max_gap_s: float = Field(1800.0, gt=0, description="Two flowing meter readings further apart than this do "
                                  "not prove the water never stopped between them")


THRESHOLDS = Settings()
_CLEAR_LEAK = (Clear(LEAK),)


def night_end_after(start_ms: int, t: Settings) -> int:
    """End of the first night window that begins at or after `start_ms` (epoch ms)."""
    local = start_ms + CHINA_OFFSET_MS
    day_ms = local - local % (24 * HOUR_MS)
    night_start = day_ms + t.leak_night_start_h * HOUR_MS
    if night_start < local:
        night_start += 24 * HOUR_MS
    return night_start + (t.leak_night_end_h - t.leak_night_start_h) * HOUR_MS - CHINA_OFFSET_MS


def leak_suspected(msg: Accepted, telemetry: Mapping[str, Any], memory: dict[str, Any], now_ms: int,
                   t: Settings = THRESHOLDS) -> Iterable[Intent]:
    """Raise `leak_suspected` while water has flowed without a pause past the window (or through the night
    window); clear it when the flow stops. A meter that reports the fault itself keeps its own alert.

    Times are the readings' own (`msg.time_ms`): a concentrator may relay a reading late, and the flow
    happened when it was read. Readings older than the last one seen are ignored.
    """
    if msg.channel != "telemetry" or telemetry.get("utility") != "water":
        return ()
    flow = msg.payload.flow_lph  # type: ignore[attr-defined]
    at = msg.time_ms
    if flow is None or at < memory.get("flow_last_ms", at):
        return ()
    if flow == 0:
        memory.pop("flow_since_ms", None)
        memory.pop("flow_last_ms", None)
        return _CLEAR_LEAK
    since = memory.get("flow_since_ms")
    if since is None or at - memory["flow_last_ms"] > t.leak_max_gap_s * 1000:
        since = memory["flow_since_ms"] = at
        memory["flow_due_ms"] = min(at + int(t.leak_after_s * 1000), night_end_after(at, t))
    memory["flow_last_ms"] = at
    if at < memory["flow_due_ms"]:
        return ()
    hours = (at - since) / HOUR_MS
    night = memory["flow_due_ms"] < since + int(t.leak_after_s * 1000)
    why = f" through the night ({t.leak_night_start_h:02d}:00-{t.leak_night_end_h:02d}:00)" if night else ""
    return (Raise(LEAK, f"water flowing without a pause for {hours:.1f} h{why}, {flow:g} L/h now"),)


REGISTER_REGRESSED = "register_regressed"
"""Dead-letter reason of a reading below the register before it, with no `replaced` between."""


def register_check(msg: Accepted, memory: dict[str, Any]) -> Refused | None:
    """Refuse a reading that goes backwards without a `replaced` event; None when the message may pass.

    `memory` is this meter's (time ms, register) of the latest reading taken. A `replaced` event restarts the
    register at its `new_reading`; a reading older than the latest (a concentrator's late relay) is judged
    by nothing and changes nothing. A refused reading is not taken: the register stays where it was.
    """
    payload = msg.payload
    at = msg.time_ms
    if msg.channel == "event" and payload.type == "replaced":  # type: ignore[attr-defined]
        memory["register"] = (at, payload.new_reading)  # type: ignore[attr-defined]
        return None
    reading = getattr(payload, "reading", None) if msg.channel == "telemetry" else None
    if reading is None:
        return None
    last = memory.get("register")
    if last is not None:
        last_ms, last_reading = last
        if at < last_ms:
            return None
        if reading < last_reading:
            return Refused(REGISTER_REGRESSED, f"reading {reading:g} is below the register's {last_reading:g} "
                                               "with no `replaced` event between")
    memory["register"] = (at, reading)
    return None


def on_the_wall(meters: Sequence[LiveDevice], sites: Sequence[Any]) -> dict[str, Any]:
    """The big screen's meter figures: meters online per utility (known from their last telemetry) and open
    leaks, meters with `leak_suspected` open, reported by the meter or raised by the hub's own rule (an alert),
    online or not (a leak does not stop when the radio does). Today's use is a store aggregate
    (`OverviewSection.today_use`)."""
    water = electricity = leaks = 0
    for m in meters:
        utility = m.telemetry.get("utility") if m.online else None
        water += utility == "water"
        electricity += utility == "electricity"
        leaks += LEAK in m.open_faults or LEAK in m.open_alerts
    return {"water_online": water, "electricity_online": electricity, "open_leaks": leaks}


KIND = DeviceKind(
    name="meter",
    checks=(register_check,),
    refusals=frozenset({REGISTER_REGRESSED}),
    rules=(leak_suspected,),
    settings=Settings,
    work_orders=frozenset({LEAK}),
    zh="水电表",
    en="Household meter",
    telemetry=Telemetry,
    events=(Replaced,),
    faults=FAULTS,
    commands={"valve": Valve, "relay": Relay},
    series={"consumption": RegisterIncrease("reading", "utility", {"water": "m³", "electricity": "kWh"},
                                            reset_event="replaced", reset_from="old_reading", reset_to="new_reading")},
    overview=OverviewSection("meters", live=on_the_wall, today_use={
        "water_today": ("consumption", "water"), "electricity_today": ("consumption", "electricity")}),
    command_roles={"valve": "admin", "relay": "admin"},  # closing either cuts a household's water or power
    examples={
        # In an order one register could read them (it only grows): tests send a kind's examples to one device.
        "telemetry": (
            {"utility": "water", "reading": 312.457, "flow_lph": 36.0, "valve": "open", "battery_pct": 87,
             "signal_dbm": -92},
            {"utility": "water", "reading": 312.5, "flow_lph": 0, "ts": 1_795_359_600_000},
            {"utility": "electricity", "reading": 4821.36, "power_kw": 1.84, "relay": "on",
             "ts": "2026-11-22T19:30:00+08:00", "seq": 96},
            {"utility": "electricity", "reading": 4821.9, "power_kw": 0, "relay": "off", "signal_dbm": -101.5},
        ),
        "event": (
            {"type": "replaced", "id": "r-1", "old_reading": 1532.8, "new_reading": 0.0},
            {"type": "fault", "id": "f-1", "code": "leak_suspected", "active": True, "detail": "flow 24 h"},
            {"type": "fault", "id": "f-2", "code": "leak_suspected", "active": False},
            {"type": "fault", "id": "f-3", "code": "relay_tripped", "active": True, "detail": "over 60 A"},
            {"type": "fault", "id": "f-4", "code": "low_battery", "active": True},
        ),
    },
)
