"""Response models and small conversions of the API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from hub.health import Report
from hub.registry import Device
from hub.state import DeviceState
from hub.times import iso


class ComponentOut(BaseModel):
    state: Literal["ok", "degraded", "down"]
    since: str = Field(description="ISO 8601: since when it is in this state")
    detail: str


class HealthOut(BaseModel):
    status: Literal["ok", "degraded", "down"] = Field(
        description="down: ingest is not receiving (HTTP 503); degraded: something is wrong but data still flows")
    receiving: bool = Field(description="Ingest is taking in what devices publish (false exactly when HTTP 503)")
    since: str = Field(description="ISO 8601: since when the status holds (when down: since when data is stale)")
    reasons: list[str] = Field(description="What is wrong, as hub alert codes (titles in GET /api/catalog, kind hub)")
    broker: bool = Field(description="Connected to the MQTT broker")
    store: bool = Field(description="The store answers and takes writes (last known: never waited for)")
    store_backend: str
    outbox_points: int
    uptime_s: float
    components: dict[str, ComponentOut] = Field(description="broker, store, outbox, tasks")

    @classmethod
    def of(cls, report: Report, broker: bool, store_backend: str, outbox_points: int, uptime_s: float) -> HealthOut:
        return cls(status=report.status, receiving=report.receiving, since=_iso_s(report.since),
                   reasons=list(report.problems), broker=broker, store=report.components["store"].state == "ok",
                   store_backend=store_backend, outbox_points=outbox_points, uptime_s=uptime_s,
                   components={name: ComponentOut(state=c.state, since=_iso_s(c.since), detail=c.detail)
                               for name, c in report.components.items()})


def _iso_s(seconds: float) -> str:
    return iso(int(seconds * 1000)) or ""


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


IGNORED_BY = ("Ignored, accepted for older clients: who acted is always the authenticated user (the token's name); "
              "the audit record keeps the request body as sent")


class AlertActionIn(BaseModel):
    by: str | None = Field(None, max_length=128, description=IGNORED_BY)
    note: str | None = Field(None, max_length=2000, description="Free text, stored as the action's note")


class OrderIn(BaseModel):
    by: str | None = Field(None, max_length=128, description=IGNORED_BY)
    team: str | None = Field(None, max_length=64, description="Default: the kind's team")


class OrderActionIn(AlertActionIn):
    assignee: str | None = Field(None, max_length=128, description="dispatch: who goes (default: the caller)")


class CommandIn(BaseModel):
    op: str = Field(min_length=1, max_length=64)
    args: dict[str, Any] = Field(default_factory=dict)


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: Literal["viewer", "maintenance", "operator", "admin"]
