"""Response models and small conversions of the API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from hub.registry import Device
from hub.state import DeviceState
from hub.times import iso


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    broker: bool
    store: bool
    store_backend: str
    outbox_points: int
    uptime_s: float


class SeqOut(BaseModel):
    last: int | None
    gaps: int
    duplicates: int
    resets: int


class DeviceOut(BaseModel):
    site: str
    kind: str
    device: str
    name: str | None = None
    building: str | None = None
    floor: int | None = None
    location: str | None = None
    registered: bool
    online: bool
    last_seen: str | None = None
    telemetry: dict[str, Any] = {}
    telemetry_at: str | None = None
    info: dict[str, Any] = {}
    open_faults: dict[str, Any] = {}
    last_event: dict[str, Any] | None = None
    seq: SeqOut | None = None
    messages: int = 0

    @classmethod
    def of(cls, device: Device, state: DeviceState | None, online: bool) -> DeviceOut:
        out = cls(**device.model_dump(exclude={"heartbeat_s"}), online=online)
        if state is not None:
            out.last_seen = iso(state.last_seen_ms)
            out.telemetry = state.telemetry
            out.telemetry_at = iso(state.telemetry_ms)
            out.info = state.info
            out.open_faults = {code: {"since": iso(f["since"]), "detail": f["detail"]}
                               for code, f in state.open_faults.items()}
            if state.last_event is not None:
                out.last_event = state.last_event | {"time": iso(state.last_event["time"])}
            seq = state.seq
            out.seq = SeqOut(last=seq.last if seq.last >= 0 else None, gaps=seq.gaps,
                             duplicates=seq.duplicates, resets=seq.resets)
            out.messages = state.messages
        return out


class DeadLetterOut(BaseModel):
    id: int
    received: str | None
    topic: str
    kind: str
    reason: str
    detail: str
    payload: str
    payload_encoding: Literal["utf-8", "hex"]


class AlertActionIn(BaseModel):
    by: str = Field(min_length=1, max_length=128, description="Who acts (name or staff id)")
    note: str | None = Field(None, max_length=2000)


class OrderIn(BaseModel):
    by: str = Field(min_length=1, max_length=128)
    team: str | None = Field(None, max_length=64, description="Default: the kind's team")


class OrderActionIn(AlertActionIn):
    assignee: str | None = Field(None, max_length=128, description="dispatch: who goes (default: by)")


class CommandIn(BaseModel):
    op: str = Field(min_length=1, max_length=64)
    args: dict[str, Any] = Field(default_factory=dict)


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: Literal["viewer", "maintenance", "operator", "admin"]
