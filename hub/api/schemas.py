"""Response models and small conversions of the API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, Field

from hub import topics
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


class MeOut(BaseModel):
    name: str
    role: Literal["viewer", "maintenance", "operator", "admin"]


class UserOut(MeOut):
    token: str = Field(description="The new user's API token; shown this once only")


class ErrorOut(BaseModel):
    """Every refusal: a sentence (or, for 422 from FastAPI's own checks, the list of what is wrong)."""

    detail: str | list[dict[str, Any]]


ERRORS: dict[int, str] = {
    400: "The request is malformed (e.g. a Content-Length that is not a byte count)",
    401: "No valid Bearer token (checked before the body is read)",
    403: "The token's role is below what the route needs (checked before the body is read)",
    404: "No such alert, work order or device kind",
    409: "The alert or work order is not in a state that allows this",
    413: "The body is larger than SMARTHUB_API_MAX_BODY_BYTES (refused without reading it)",
    422: "A parameter or the body is invalid: not a slug, out of range, control characters, NaN/Infinity",
    503: "The store (or, for commands, the broker) cannot be reached; the detail is generic, the log has more",
    504: "The device did not answer in time",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the refusals a route can give."""
    return {code: {"model": ErrorOut, "description": ERRORS[code]} for code in codes}


def _anchored(pattern: str) -> str:
    return f"^{pattern}$"


PLAIN = r"^[^\x00-\x1f\x7f]*$"
"""No control characters (CR, LF, NUL...): nothing a log line, a header or a store query could be split by."""
NAME = r"^[a-z][a-z0-9_]{0,63}$"
"""Kinds and event types (`passage`, `door_held_open`)."""
ID = r"^[A-Za-z0-9_-]{1,64}$"
"""Alert and work-order ids (`new_id`, `WO...`)."""

SiteQ = Annotated[str | None, Query(pattern=_anchored(topics.SITE_RE.pattern), description="Site slug")]
DeviceQ = Annotated[str | None, Query(pattern=_anchored(topics.DEVICE_RE.pattern), description="Device slug")]
KindQ = Annotated[str | None, Query(pattern=NAME, description="Device kind")]
TypeQ = Annotated[str | None, Query(pattern=NAME, description="Event type")]
TextQ = Annotated[str | None, Query(max_length=128, pattern=PLAIN)]
TimeQ = Annotated[str | None, Query(max_length=40, pattern=PLAIN, description="ISO 8601 or epoch ms (0 to year 9999)")]
SitePath = Annotated[str, Path(pattern=_anchored(topics.SITE_RE.pattern))]
KindPath = Annotated[str, Path(pattern=NAME)]
DevicePath = Annotated[str, Path(pattern=_anchored(topics.DEVICE_RE.pattern))]
IdPath = Annotated[str, Path(pattern=ID)]
