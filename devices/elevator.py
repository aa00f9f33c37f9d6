"""Elevators (电梯): IoT-monitored cars; fault codes after GB/T 24476.

Elevators are never driven remotely, so the kind has no commands.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from devices.base import DeviceKind, DevicePayload, FaultSpec, Severity
from devices.rules import elevator_door_faults, elevator_trapped

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

KIND = DeviceKind(
    name="elevator",
    rules=(elevator_trapped, elevator_door_faults),
    zh="电梯",
    en="Elevator",
    telemetry=Telemetry,
    events=(),
    faults=FAULTS,
    commands={},
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
