"""Door controllers and face / card / QR terminals (门禁).

`subject` is an opaque id, never a name or a face image, and still personal
data: a field, never a tag, and masked by the API. `image`, a link to the
terminal's snapshot (a face terminal's is a face), is personal too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    OverviewSection,
    Severity,
    TodayFigure,
    WebLink,
)
from devices.rules import Clear, Deadline, Intent


class Telemetry(DevicePayload):
    """Periodic door state; every field optional."""

    door: Literal["open", "closed"] | None = None
    locked: bool | None = None


class Access(EventPayload):
    """One attempt to pass the door."""

    type: Literal["access"]
    method: Literal["face", "card", "qr", "pin", "fingerprint", "remote"]
    # Card numbers often arrive as JSON numbers: kept as text, so the stored field keeps one type.
    subject: str = Field(min_length=1, max_length=128, coerce_numbers_to_str=True, description="Opaque person id")
    result: Literal["granted", "denied"]
    reason: Literal["unknown", "expired", "blacklisted", "outside_schedule", "anti_passback", "other"] | None = None
    image: WebLink | None = Field(None, description="http(s) URL of the terminal's snapshot (a face: personal)")


class Unlock(CommandArgs):
    seconds: int = Field(5, ge=1, le=300, description="How long the door stays unlocked")


FAULTS = {
    "door_forced": FaultSpec(Severity.CRITICAL, "强行开门", "Door forced open"),
    "door_held_open": FaultSpec(Severity.MINOR, "门未关", "Door held open"),
    "tamper": FaultSpec(Severity.MAJOR, "防拆报警", "Tamper alarm"),
    "duress": FaultSpec(Severity.CRITICAL, "胁迫报警", "Duress alarm"),
    "tailgating": FaultSpec(Severity.MINOR, "尾随", "Tailgating"),
    "reader_offline": FaultSpec(Severity.MAJOR, "读头离线", "Reader offline"),
}

class Settings(KindSettings):
    door_open_after_s: float = Field(120.0, gt=0, description="A door open this long is held open")


_CLEAR_DOOR_HELD_OPEN = (Clear("door_held_open"),)


def door_held_open(msg: Accepted, telemetry: Mapping[str, Any], memory: dict[str, Any], now_ms: int,
                   t: Settings) -> Iterable[Intent]:
    if msg.channel != "telemetry" or "door" not in telemetry:
        return ()
    if telemetry["door"] != "open":
        return _CLEAR_DOOR_HELD_OPEN
    return (Deadline("door_held_open", now_ms + int(t.door_open_after_s * 1000),
                     f"door open for over {t.door_open_after_s:.0f} s"),)


KIND = DeviceKind(
    name="access",
    rules=(door_held_open,),
    zh="门禁",
    en="Access control",
    telemetry=Telemetry,
    events=(Access,),
    faults=FAULTS,
    commands={"unlock": Unlock},
    personal=("subject", "image"),
    settings=Settings,
    work_orders=frozenset({"door_forced"}),
    overview=OverviewSection("access", today={
        "granted_today": TodayFigure("count", "subject", {"type": "access", "result": "granted"}),
        "denied_today": TodayFigure("count", "subject", {"type": "access", "result": "denied"}),
    }),
    examples={
        "telemetry": (
            {"door": "closed", "locked": True},
            {"door": "open", "locked": False, "ts": "2026-11-22T18:42:10+08:00", "seq": 5310},
        ),
        "event": (
            {"type": "access", "id": "a-1", "method": "face", "subject": "p-7f3a", "result": "granted"},
            {"type": "access", "id": "a-2", "method": "card", "subject": "c-0091", "result": "denied",
             "reason": "expired"},
            {"type": "access", "id": "a-3", "method": "qr", "subject": "v-20261122-17", "result": "granted",
             "seq": 5309},
            {"type": "access", "id": "a-4", "method": "card", "subject": 3141592653, "result": "denied",
             "reason": "anti_passback"},
            {"type": "access", "id": "a-5", "method": "pin", "subject": "p-11c0", "result": "denied",
             "reason": "outside_schedule"},
            {"type": "access", "id": "a-6", "method": "remote", "subject": "op-guard-2", "result": "granted"},
            {"type": "fault", "id": "f-1", "code": "door_forced", "active": True},
            {"type": "fault", "id": "f-2", "code": "door_held_open", "active": True, "detail": "open 180 s"},
            {"type": "fault", "id": "f-3", "code": "door_held_open", "active": False},
        ),
    },
)
