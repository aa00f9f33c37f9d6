"""Derived alerts: what a person should look at even when no device reported a fault.

Rules are pure functions of one accepted message, the device's live state and
the time; they return intents (raise, clear, or raise at a deadline unless
cleared first), and the alert engine owns the alerts and the clock. Their
thresholds are settings (`Thresholds`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from devices.base import Accepted, FaultSpec, Severity


@dataclass(frozen=True, slots=True)
class Thresholds:
    trapped_after_s: float = 30.0
    """An occupied car, stopped with its door closed this long, may hold a trapped passenger."""
    door_faults_per_hour: int = 3
    """This many door faults on one elevator within an hour: send maintenance before it fails."""
    door_open_after_s: float = 120.0
    """A door reported open this long is held open (propped, broken closer)."""
    charger_max_c: float = 70.0
    """Charger temperature above which charging should stop."""


@dataclass(frozen=True, slots=True)
class Raise:
    code: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Clear:
    code: str


@dataclass(frozen=True, slots=True)
class Deadline:
    """Raise `code` at `at_ms` unless a Clear for it comes first."""

    code: str
    at_ms: int
    detail: str | None = None


Intent = Raise | Clear | Deadline
Rule = Callable[[Accepted, Mapping[str, Any], dict[str, Any], int, Thresholds], Iterable[Intent]]
"""(message, live telemetry, the rule's scratch memory for this device, now ms, thresholds) -> intents"""

DERIVED: dict[str, FaultSpec] = {
    "trapped_suspected": FaultSpec(Severity.CRITICAL, "疑似困人", "Passenger possibly trapped"),
    "door_faults_repeated": FaultSpec(Severity.MAJOR, "门系统频繁故障", "Repeated door faults: maintenance due"),
    "high_altitude_throw": FaultSpec(Severity.CRITICAL, "高空抛物", "Object thrown from height"),
    "fire_detected": FaultSpec(Severity.CRITICAL, "烟火报警", "Smoke or fire detected"),
}
"""Codes only rules raise; device fault codes keep their kind's own titles."""

DOOR_FAULTS = frozenset({"door_open_fault", "door_close_fault", "door_lock_fault", "door_obstructed"})
_CLEAR_TRAPPED = (Clear("trapped_suspected"),)
_CLEAR_DOOR_HELD_OPEN = (Clear("door_held_open"),)
_CLEAR_BARRIER_STUCK = (Clear("barrier_stuck"),)
_CLEAR_HIGH_TEMPERATURE = (Clear("high_temperature"),)
"""What most messages say: made once, not per message (a frozen dataclass is slow to build)."""


def elevator_trapped(msg: Accepted, telemetry: Mapping[str, Any], memory: dict[str, Any], now_ms: int,
                     t: Thresholds) -> Iterable[Intent]:
    if msg.channel != "telemetry":
        return ()
    stuck = telemetry.get("occupied") is True and telemetry.get("running") is False and \
        telemetry.get("door") == "closed"
    if not stuck:
        return _CLEAR_TRAPPED
    floor = telemetry.get("floor")
    return (Deadline("trapped_suspected", now_ms + int(t.trapped_after_s * 1000),
                     f"occupied, stopped, door closed for {t.trapped_after_s:.0f} s (floor {floor})"),)


def elevator_door_faults(msg: Accepted, telemetry: Mapping[str, Any], memory: dict[str, Any], now_ms: int,
                         t: Thresholds) -> Iterable[Intent]:
    payload = msg.payload
    if msg.channel != "event" or payload.type != "fault" or not payload.active or payload.code not in DOOR_FAULTS:  # type: ignore[attr-defined]
        return ()
    recent = [ms for ms in memory.get("door_faults", []) if ms > now_ms - 3_600_000] + [now_ms]
    memory["door_faults"] = recent
    if len(recent) >= t.door_faults_per_hour:
        return (Raise("door_faults_repeated", f"{len(recent)} door faults within an hour"),)
    return ()


def door_held_open(msg: Accepted, telemetry: Mapping[str, Any], memory: dict[str, Any], now_ms: int,
                   t: Thresholds) -> Iterable[Intent]:
    if msg.channel != "telemetry" or "door" not in telemetry:
        return ()
    if telemetry["door"] != "open":
        return _CLEAR_DOOR_HELD_OPEN
    return (Deadline("door_held_open", now_ms + int(t.door_open_after_s * 1000),
                     f"door open for over {t.door_open_after_s:.0f} s"),)


def barrier_stuck(msg: Accepted, telemetry: Mapping[str, Any], memory: dict[str, Any], now_ms: int,
                  t: Thresholds) -> Iterable[Intent]:
    payload = msg.payload
    state = payload.state if msg.channel == "event" and payload.type == "barrier" else (  # type: ignore[attr-defined]
        telemetry.get("barrier") if msg.channel == "telemetry" else None)
    if state is None:
        return ()
    return (Raise("barrier_stuck", "the barrier reports itself stuck"),) if state == "stuck" else _CLEAR_BARRIER_STUCK


def charger_temperature(msg: Accepted, telemetry: Mapping[str, Any], memory: dict[str, Any], now_ms: int,
                        t: Thresholds) -> Iterable[Intent]:
    temperature = telemetry.get("temperature_c") if msg.channel == "telemetry" else None
    if temperature is None:
        return ()
    if temperature > t.charger_max_c:
        return (Raise("high_temperature", f"{temperature:.1f} °C (limit {t.charger_max_c:.0f} °C)"),)
    if temperature < t.charger_max_c - 5:  # hysteresis: no flapping around the limit
        return _CLEAR_HIGH_TEMPERATURE
    return ()


def camera_incidents(msg: Accepted, telemetry: Mapping[str, Any], memory: dict[str, Any], now_ms: int,
                     t: Thresholds) -> Iterable[Intent]:
    payload = msg.payload
    if msg.channel != "event" or payload.type != "detection" or payload.phase != "start":  # type: ignore[attr-defined]
        return ()
    link = payload.snapshot or payload.clip  # type: ignore[attr-defined]
    where = f" in {payload.zone}" if payload.zone else ""  # type: ignore[attr-defined]
    detail = f"score {payload.score:.2f}{where}" + (f"; snapshot {link}" if link else "")  # type: ignore[attr-defined]
    if payload.label == "high_altitude_throw":  # type: ignore[attr-defined]
        return (Raise("high_altitude_throw", detail),)
    if payload.label in ("smoke", "fire"):  # type: ignore[attr-defined]
        return (Raise("fire_detected", detail),)
    return ()
