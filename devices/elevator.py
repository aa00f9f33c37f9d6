"""Elevators (电梯): IoT-monitored cars; fault codes after GB/T 24476.

Elevators are never driven remotely, so the kind has no commands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from devices.base import (
    Accepted,
    DeviceKind,
    DevicePayload,
    DistrictGauge,
    FaultSpec,
    Gauge,
    KindSettings,
    LiveDevice,
    OverviewSection,
    Severity,
)
from devices.rules import Clear, Deadline, Intent, Raise

Direction = Literal["up", "down", "idle"]
Door = Literal["open", "closed", "opening", "closing"]
Mode = Literal[
    "normal", "inspection", "maintenance", "fire", "emergency_power", "seismic", "out_of_service", "parking"
]


class Telemetry(DevicePayload):
    """Periodic state of one car. Every field is optional: a device may send only what changed."""

    floor: int | None = Field(None, description="Current floor; negative below ground")
    direction: Direction | None = None
    door: Door | None = None
    running: bool | None = None
    speed_mps: float | None = Field(None, ge=0)
    load_kg: float | None = Field(None, ge=0)
    occupied: bool | None = Field(None, description="Someone is in the car")
    mode: Mode | None = None
    trips: int | None = Field(None, ge=0, description="Trip counter")
    door_cycles: int | None = Field(None, ge=0, description="Door open/close cycle counter")


C, M, m = Severity.CRITICAL, Severity.MAJOR, Severity.MINOR
FAULTS = {
    "trapped_passenger": FaultSpec(C, "困人", "Passenger trapped"),
    "door_open_while_running": FaultSpec(C, "运行中开门", "Door open while running"),
    "unintended_car_movement": FaultSpec(C, "开门走车", "Unintended car movement"),
    "overspeed": FaultSpec(C, "超速", "Overspeed"),
    "stopped_outside_door_zone": FaultSpec(M, "门区外停梯", "Stopped outside door zone"),
    "overtravel_top": FaultSpec(C, "冲顶", "Overtravel at top"),
    "overtravel_bottom": FaultSpec(C, "蹲底", "Overtravel at bottom"),
    "safety_circuit_open": FaultSpec(M, "安全回路断路", "Safety circuit open"),
    "door_lock_fault": FaultSpec(M, "门锁回路故障", "Door lock circuit fault"),
    "door_open_fault": FaultSpec(m, "开门故障", "Door fails to open"),
    "door_close_fault": FaultSpec(m, "关门故障", "Door fails to close"),
    "floor_position_lost": FaultSpec(M, "楼层信息丢失", "Floor position lost"),
    "runtime_limiter_tripped": FaultSpec(M, "电动机运转时间限制器动作", "Motor runtime limiter tripped"),
    "power_failure": FaultSpec(M, "停电", "Power failure"),
    "door_obstructed": FaultSpec(m, "长时间开门/门受阻", "Door held open or obstructed"),
    "alarm_button": FaultSpec(C, "紧急呼叫", "Emergency call button pressed"),
    "ebike_in_car": FaultSpec(M, "电动车入梯", "E-bike in car"),
}



class Settings(KindSettings):
    trapped_after_s: float = Field(30.0, gt=0, description="Occupied car stopped, door closed: suspect trapping after")
    door_faults_per_hour: int = Field(3, ge=1, description="Door faults per hour on one elevator that call for service")


DERIVED = {
    "trapped_suspected": FaultSpec(C, "疑似困人", "Passenger possibly trapped"),
    "door_faults_repeated": FaultSpec(M, "门系统频繁故障", "Repeated door faults: maintenance due"),
}
"""Codes only this kind's rules raise."""

DOOR_FAULTS = frozenset({"door_open_fault", "door_close_fault", "door_lock_fault", "door_obstructed"})
_CLEAR_TRAPPED = (Clear("trapped_suspected"),)
"""What most messages say: made once, not per message (a frozen dataclass is slow to build)."""


def elevator_trapped(msg: Accepted, telemetry: Mapping[str, Any], memory: dict[str, Any], now_ms: int,
                     t: Settings) -> Iterable[Intent]:
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
                         t: Settings) -> Iterable[Intent]:
    payload = msg.payload
    if msg.channel != "event" or payload.type != "fault" or not payload.active or payload.code not in DOOR_FAULTS:  # type: ignore[attr-defined]
        return ()
    recent = [ms for ms in memory.get("door_faults", []) if ms > now_ms - 3_600_000] + [now_ms]
    memory["door_faults"] = recent
    if len(recent) >= t.door_faults_per_hour:
        return (Raise("door_faults_repeated", f"{len(recent)} door faults within an hour"),)
    return ()


OUT_OF_SERVICE_MODES = frozenset({"out_of_service", "maintenance", "inspection", "fire", "seismic"})
"""Modes in which the car does not carry residents."""


def in_service(devices: Sequence[LiveDevice], sites: Sequence[Any]) -> dict[str, Any]:
    """Cars carrying residents now: online, no open fault, in a mode that carries people."""
    total = len(devices)
    serving = sum(d.online and not d.faulted and d.telemetry.get("mode") not in OUT_OF_SERVICE_MODES for d in devices)
    return {"total": total, "in_service": serving, "availability": round(serving / total, 4) if total else 1.0}

def availability(figures: Mapping[str, Any], controller: Any, site: str) -> Gauge | None:
    """The district wall's elevator availability: cars in service of all (strain: the share out of service)."""
    total = figures.get("total", 0)
    if not total:
        return None
    share = figures["availability"]
    return Gauge(figures["in_service"], total, share, round(1 - share, 4))


KIND = DeviceKind(
    name="elevator",
    rules=(elevator_trapped, elevator_door_faults),
    zh="电梯",
    en="Elevator",
    telemetry=Telemetry,
    events=(),
    faults=FAULTS,
    commands={},
    no_commands="elevators are never driven remotely",
    settings=Settings,
    derived=DERIVED,
    team="elevator-maintenance",
    work_orders=frozenset({"trapped_passenger", "trapped_suspected", "door_faults_repeated"}),
    not_failures=frozenset({"door_faults_repeated"}),  # a maintenance hint: the door faults count themselves
    reliability_default=True,
    overview=OverviewSection("elevators", live=in_service),
    district=DistrictGauge("elevator_availability", "电梯可用率", "Elevator availability", availability),
    examples={
        "telemetry": (
            {"floor": 7, "direction": "up", "door": "closed", "running": True, "speed_mps": 1.5,
             "load_kg": 320, "occupied": True, "mode": "normal", "trips": 10452, "door_cycles": 20911},
            {"floor": -2, "direction": "idle", "door": "open", "running": False, "occupied": False,
             "mode": "parking", "ts": "2026-11-22T08:00:00+08:00", "seq": 3},
        ),
        "event": (
            {"type": "fault", "code": "trapped_passenger", "active": True, "detail": "between_floors", "id": "f-1"},
            {"type": "fault", "code": "trapped_passenger", "active": False, "id": "f-2"},
        ),
    },
)
