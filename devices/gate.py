"""Barrier gates with plate recognition (车道闸): every vehicle in and out of the 小区.

Plates identify people's vehicles: they are fields (never tags) and `personal`,
so the API can mask them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import Field

from devices.base import (
    Accepted,
    CommandArgs,
    CountSeries,
    DeviceKind,
    DevicePayload,
    EventPayload,
    FaultSpec,
    InsideSpec,
    OverviewSection,
    Severity,
    TodayFigure,
    WebLink,
)
from devices.rules import Clear, Intent, Raise

Barrier = Literal["open", "closed", "stuck"]


class Telemetry(DevicePayload):
    """Periodic barrier state; every field optional, as for every kind."""

    barrier: Barrier | None = None
    cycles: int | None = Field(None, ge=0, description="Barrier open/close cycle counter")


class Passage(EventPayload):
    """A vehicle read at the lane, and what the gate decided."""

    type: Literal["passage"]
    plate: str = Field(min_length=1, max_length=16, description="e.g. 琼A12345; 8 characters on green NEV plates")
    plate_color: Literal["blue", "yellow", "green", "white", "black", "unknown"]
    direction: Literal["in", "out"]
    # The contract gives lanes no type and many controllers number them: take 2 as "2",
    # so the stored field keeps one type.
    lane: str = Field(min_length=1, max_length=64, coerce_numbers_to_str=True)
    vehicle_class: Literal["car", "truck", "bus", "motorcycle", "other"]
    confidence: float = Field(ge=0, le=1)
    decision: Literal["allowed", "denied", "manual"]
    category: Literal["resident", "visitor", "blacklisted", "unknown"]
    image: WebLink | None = Field(None, description="http(s) URL of the plate snapshot")


class BarrierEvent(EventPayload):
    """The barrier arm changed position (or failed to)."""

    type: Literal["barrier"]
    state: Barrier


class NoArgs(CommandArgs):
    """Commands that take no arguments."""


FAULTS = {
    "barrier_stuck": FaultSpec(Severity.MAJOR, "道闸卡滞", "Barrier stuck"),
    "loop_detector_fault": FaultSpec(Severity.MINOR, "地感线圈故障", "Loop detector fault"),
    "camera_offline": FaultSpec(Severity.MAJOR, "识别相机离线", "Plate camera offline"),
}

_CLEAR_BARRIER_STUCK = (Clear("barrier_stuck"),)


def barrier_stuck(msg: Accepted, telemetry: Mapping[str, Any], memory: dict[str, Any], now_ms: int,
                  t: Any) -> Iterable[Intent]:
    payload = msg.payload
    state = payload.state if msg.channel == "event" and payload.type == "barrier" else (  # type: ignore[attr-defined]
        telemetry.get("barrier") if msg.channel == "telemetry" else None)
    if state is None:
        return ()
    return (Raise("barrier_stuck", "the barrier reports itself stuck"),) if state == "stuck" else _CLEAR_BARRIER_STUCK


KIND = DeviceKind(
    name="gate",
    rules=(barrier_stuck,),
    zh="车道闸",
    en="Barrier gate",
    telemetry=Telemetry,
    events=(Passage, BarrierEvent),
    faults=FAULTS,
    commands={"open": NoArgs, "close": NoArgs},
    personal=("plate", "image"),
    # all passages, as the traffic chart counts them
    overview=OverviewSection("vehicles", today={
        "in_today": TodayFigure("count", "plate", {"type": "passage", "direction": "in"}),
        "out_today": TodayFigure("count", "plate", {"type": "passage", "direction": "out"}),
    }, inside="inside"),
    series={"traffic": CountSeries("passage", "plate", "direction", ("in", "out"))},
    # a passage the gate let through (or a guard after a check) moves a plate in or out
    inside=InsideSpec("passage", "plate", "direction", "decision", frozenset({"allowed", "manual"})),
    examples={
        "telemetry": (
            {"barrier": "closed", "cycles": 48211},
            {"barrier": "open", "cycles": 48212, "ts": "2026-11-22T07:58:03+08:00", "seq": 1201},
            {"barrier": "stuck", "ts": 1_795_305_483_000, "seq": 1202},
        ),
        "event": (
            {"type": "passage", "id": "p-1", "plate": "琼A12345", "plate_color": "blue", "direction": "in",
             "lane": "east-1", "vehicle_class": "car", "confidence": 0.97, "decision": "allowed",
             "category": "resident", "image": "http://gate-east/snap/p-1.jpg"},
            {"type": "passage", "id": "p-2", "plate": "粤BD12345", "plate_color": "green", "direction": "out",
             "lane": "east-2", "vehicle_class": "car", "confidence": 0.88, "decision": "allowed",
             "category": "visitor", "seq": 77},
            {"type": "passage", "id": "p-3", "plate": "沪C9F88K", "plate_color": "blue", "direction": "in",
             "lane": 1, "vehicle_class": "car", "confidence": 0.41, "decision": "manual", "category": "unknown"},
            {"type": "passage", "id": "p-4", "plate": "琼D55321", "plate_color": "yellow", "direction": "in",
             "lane": "west-1", "vehicle_class": "truck", "confidence": 0.93, "decision": "denied",
             "category": "blacklisted"},
            {"type": "barrier", "id": "b-1", "state": "open"},
            {"type": "barrier", "id": "b-2", "state": "stuck"},
            {"type": "fault", "id": "f-1", "code": "barrier_stuck", "active": True, "detail": "arm did not lower"},
            {"type": "fault", "id": "f-2", "code": "barrier_stuck", "active": False},
            {"type": "fault", "id": "f-3", "code": "loop_detector_fault", "active": True, "detail": "lane east-2"},
        ),
    },
)
