"""Response models and small conversions of the API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from devices.base import CommandRole
from hub import topics
from hub.alerts.models import State as AlertState
from hub.alerts.orders import OrderState
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
    unit: str | None = None
    room: str | None = None
    """Personal (`hub.registry.PERSONAL`): masked below the operator role."""
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


Number = int | float
"""A figure that is an integer or not as it was computed: pydantic would turn a `float` field's 0 into 0.0."""
Severity = Literal["critical", "major", "minor", "info"]


class EventOut(BaseModel):
    """A stored event: the fields every event has, then its kind's own (contract section 2), as stored.

    Viewers and maintenance see personal fields masked (a plate stays a string, `琼A·1***5`; an image is null)."""

    model_config = ConfigDict(extra="allow")
    time: str = Field(description="ISO 8601: the device's `ts`, else the receive time")
    kind: str = Field(description="Device kind (from the measurement `{kind}_event`)")
    site: str
    device: str
    type: str = Field(description="Event type (`passage`, `fault`, `reply` for a command's answer...)")
    code: str | None = Field(None, description="Faults: the fault code (a tag)")
    label: str | None = Field(None, description="Detections: what was detected (a tag)")
    id: str | None = Field(None, description="The event's own id, when the device gave one")
    seq: int | None = Field(None, description="The device's message counter, when it sends one")
    lag_ms: int | None = Field(None, description="Receive time minus the device's `ts`")


class NoteOut(BaseModel):
    at: str = Field(description="ISO 8601")
    by: str = Field(description="A user's name, or device, hub, rule")
    action: str = Field(description="opened, recurred, acknowledged, escalated, resolved...")
    text: str | None


class AlertOut(BaseModel):
    """Contract section 4's alert payload, plus the hub's additions (title_en, resolved_by, occurrences,
    escalated_at, notes)."""

    id: str
    site: str
    kind: str = Field(description="Device kind, or `hub` for the hub's own alerts")
    device: str
    code: str = Field(description="Fault code (titles in GET /api/catalog)")
    severity: Severity
    state: AlertState
    opened_at: str = Field(description="ISO 8601")
    acknowledged_at: str | None
    resolved_at: str | None
    acknowledged_by: str | None
    title: str = Field(description="Chinese title")
    detail: str | None
    title_en: str
    resolved_by: str | None
    occurrences: int = Field(description="How often the fault came while the alert was active")
    escalated_at: str | None = Field(description="When nobody took a critical alert in time")
    notes: list[NoteOut] = Field(description="What happened to the alert, oldest first")


class IncidentPartOut(BaseModel):
    """One alert or event of an incident; `ref` is the alert's id or the event's (`GET /api/incidents/{id}/events`
    gives the stored events themselves)."""

    source: Literal["alert", "event"]
    ref: str
    site: str
    kind: str
    device: str
    at: str = Field(description="ISO 8601: the alert's opening or the event's time")
    severity: Severity = Field(description="The alert's; events are info")
    title: str
    places: list[str] = Field(description="The device, its registered place and what it sees")
    state: AlertState | None = Field(description="An alert's state; null for an event")
    fields: dict[str, Any] = Field(description="An event's payload (personal fields masked below operator)")


class IncidentEntryOut(BaseModel):
    at: str = Field(description="ISO 8601")
    by: str
    action: str = Field(description="alert, event, alert acknowledged, order dispatched, incident resolved, ...")
    ref: str = Field(description="The alert, event, work order or (worked as a whole) incident the line concerns")
    text: str | None


class IncidentOut(BaseModel):
    """The alerts and events of one place and time window, as one thing to look at."""

    id: str
    site: str
    state: AlertState = Field(description="Resolved once every alert is; acknowledged once none is open")
    severity: Severity = Field(description="The worst of its parts")
    title: str = Field(description="Its worst alert's Chinese title")
    title_en: str
    opened_at: str = Field(description="ISO 8601")
    last_at: str = Field(description="ISO 8601: its latest part or action")
    places: list[str]
    people: list[str] = Field(description="Who acknowledged, dispatched, was assigned or resolved")
    orders: list[str] = Field(description="Work orders of its alerts")
    alerts: list[str]
    events: list[str]
    more_events: int = Field(description="Events at its place beyond those kept")
    parts: list[IncidentPartOut]
    timeline: list[IncidentEntryOut] = Field(description="Oldest first")


class FloorBandOut(BaseModel):
    band: str = Field(description="`low-high` floors, one floor, or `unknown` (no calibration, or outside it)")
    low: int | None
    high: int | None
    estimate: float | None = Field(description="The interpolated floor level of the track's first box top")
    reason: str = Field(description="How it was computed, or why it is unknown")
    calibration_marks: int = Field(description="The camera's registered floor marks")


class EvidenceDetectionOut(BaseModel):
    """One happening a camera saw (its phases merged), as evidence."""

    id: str
    site: str
    device: str = Field(description="The camera (a facade camera for a throw)")
    seen_by: dict[str, str] = Field(description="The camera as registered: site, device, name, building, ...")
    label: str | None
    zone: str | None
    score: float | None = Field(description="The best score of its phases")
    at_ms: int
    at: str = Field(description="ISO 8601: its first phase")
    phases: list[str | None]
    media: dict[str, str] = Field(description="snapshot, pre_clip, post_clip, clip: links as the camera gave them "
                                  "(personal: empty below operator, police see them)")
    start_top_px: float | None = Field(description="Top of the track's first box: pixel row of the analysed frame")
    floors: FloorBandOut


class EvidenceOut(BaseModel):
    incident: str
    site: str
    title: str
    title_en: str
    at: str = Field(description="ISO 8601: its first detection")
    detections: list[EvidenceDetectionOut]


class IncidentEvidenceOut(BaseModel):
    incident: str
    evidence: EvidenceOut | None = Field(description="null: none of its detections links media or has a start "
                                         "height")


class ChainVerdictOut(BaseModel):
    ok: bool = Field(description="The links hold and the stored incident is what the chain says")
    length: int = Field(description="Records in the chain")
    head: str = Field(description="SHA-256 of its last record (64 zeros for an empty chain)")
    problems: list[str] = Field(description="Each thing that does not hold, in words")
    forgotten: list[str] = Field(description="Parts whose personal fields retention dropped (they verify on the "
                                 "rest; a note, not a problem)")


class ReliabilityOut(BaseModel):
    failures: int = Field(description="Major or critical device faults opened in the window")
    downtime_s: float = Field(description="Time with a failure active, overlaps counted once")
    mttr_s: float | None = Field(description="Mean time to repair (none repaired: null)")
    mtbf_s: float | None = Field(description="Mean time between failures (no failure: null)")
    availability: float = Field(description="Share of the window without an active failure")


class DeviceReliabilityOut(BaseModel):
    site: str
    device: str
    name: str | None
    failures: int = Field(description="Major or critical device faults opened in the window")
    downtime_s: float = Field(description="Time with a failure active, overlaps counted once")
    mttr_s: float | None = Field(description="Mean time to repair (none repaired: null)")
    mtbf_s: float | None = Field(description="Mean time between failures (no failure: null)")
    availability: float = Field(description="Share of the window without an active failure")


class SiteReliabilityOut(ReliabilityOut):
    availability: float = Field(description="Mean of the site's devices' availability")
    devices: int = Field(description="Devices of the kind in the site")


class ReliabilityReportOut(BaseModel):
    kind: str
    days: float
    sites: dict[str, SiteReliabilityOut] = Field(description="Per site slug")
    devices: list[DeviceReliabilityOut]

Deadline = Literal["dispatch", "arrive", "resolve"]


class OrderOut(BaseModel):
    """A work order (工单): an alert given to a team, with its deadlines."""

    id: str
    alert_id: str
    site: str
    kind: str
    device: str
    code: str
    severity: Severity
    title: str
    team: str
    state: OrderState
    assignee: str | None
    created_at: str = Field(description="ISO 8601")
    dispatched_at: str | None
    arrived_at: str | None
    resolved_at: str | None
    dispatch_due: str
    arrive_due: str | None = Field(description="Only for trapped passengers: on site within the SLA")
    resolve_due: str
    overdue: list[Deadline] = Field(description="Deadlines missed by now (or by the time the step was done)")
    escalated: list[Deadline] = Field(description="Missed deadlines already escalated")
    notes: list[NoteOut]


class TeamReportOut(BaseModel):
    orders: int
    resolved: int
    dispatched_on_time: float | None = Field(description="Share of the orders; null without orders")
    arrived_on_time: float | None = Field(description="Share of the orders with an arrival deadline")
    resolved_on_time: float | None
    mean_resolve_s: float | None = Field(description="Created to resolved, over the resolved orders")


class OrdersReportOut(BaseModel):
    days: float
    teams: dict[str, TeamReportOut] = Field(description="Per team")


class ReplyOut(BaseModel):
    """The device's reply (contract section 3)."""

    id: str = Field(description="The command's id")
    ok: bool
    error: str | None = Field(None, description="Why not, when the device says (left out otherwise)")
    result: dict[str, Any] | None = Field(None, description="What the op gives back, when it gives something "
                                          "(project extension: e.g. a device's configuration as read)")


class AuditOut(BaseModel):
    at: str = Field(description="ISO 8601")
    user: str
    role: str
    action: str = Field(description="device.command, alert.ack, alert.resolve, alert.order, order.<action>, "
                                    "user.add")
    target: str
    outcome: str = Field(description="ok, failed (the device said no), or `refused <status>`")
    detail: dict[str, Any] = Field(description="The request as sent (and a command's reply)")


Point = Annotated[list[str | Number], Field(min_length=2, max_length=2, description="[ISO 8601 bucket start, value]")]
"""A pair, as a list: a tuple's `prefixItems` is lost on tools that read the document as OpenAPI 3.0."""


class TrafficOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    since: str = Field(description="ISO 8601: China midnight of the day")
    every_s: int
    in_: list[Point] = Field(alias="in", description="Vehicles in per hour, every hour of the day")
    out: list[Point] = Field(description="Vehicles out per hour")


class ChargingPowerOut(BaseModel):
    since: str
    every_s: int
    chargers: int = Field(description="Registered chargers summed")
    kw: list[Point] = Field(description="[bucket start, total kW], every bucket")


class ConsumptionOut(BaseModel):
    since: str = Field(description="ISO 8601: China midnight of the first day")
    every_s: int = Field(description="3600 (hours) or 86400 (China days)")
    utility: str
    unit: str = Field(description="The register's unit: m³ or kWh")
    values: list[Point] = Field(description="[bucket start, what was used in it], every bucket")


class AlertDayOut(BaseModel):
    day: str = Field(description="ISO 8601: China midnight")
    critical: int
    major: int
    minor: int
    info: int


class AlertsSeriesOut(BaseModel):
    since: str
    every_s: int
    days: list[AlertDayOut] = Field(description="Alerts opened per day by severity, every day listed")


class KindCountsOut(BaseModel):
    total: int
    online: int
    faulted: int = Field(description="Online with an open fault")


class VehiclesOut(BaseModel):
    in_today: int
    out_today: int
    inside: int = Field(description="Vehicles in and not out yet")


class AccessOut(BaseModel):
    granted_today: int
    denied_today: int


class SeverityCountsOut(BaseModel):
    critical: int
    major: int
    minor: int
    info: int


class AlertCountsOut(BaseModel):
    open: SeverityCountsOut
    acknowledged: SeverityCountsOut


class ElevatorsOut(BaseModel):
    total: int
    in_service: int = Field(description="Online, without open fault, not in an out-of-service mode")
    availability: float = Field(description="in_service / total (1 without elevators)")


class ChargersOut(BaseModel):
    total: int
    charging: int
    kw: float = Field(description="Power drawn now")
    cap_kw: float | None = Field(description="The sites' transformer capacity for chargers (null: none declared)")
    kwh_today: Number


Figure = int | float | None
"""A kind's figure on the big screen: a count, an amount, or null (e.g. a capacity nobody declared)."""


class KindOverviewOut(KindCountsOut):
    figures: dict[str, Figure] = Field(
        description="What the kind's module declares for the overview (`DeviceKind.overview`), live figures from "
                    "its devices' state and today's from the store, by figure name; {} when it declares none")


class OverviewOut(BaseModel):
    """The big screen's figures: counts only, no personal data.

    The sections named here are the first kinds' (the screen's hand-made panels read them); a kind added later
    may declare a section of its own under another key, which is passed through as it is (hence extra fields
    are allowed); its figures are typed in `kinds` like every kind's."""

    model_config = ConfigDict(extra="allow")

    time: str
    site: str | None
    devices: dict[str, KindCountsOut] = Field(description="Per kind")
    vehicles: VehiclesOut
    access: AccessOut
    detections_today: int
    alerts: AlertCountsOut
    elevators: ElevatorsOut
    chargers: ChargersOut
    kinds: dict[str, KindOverviewOut] = Field(
        description="Every registered kind alike, by kind: devices total, online and faulted (as in `devices`) "
                    "and its declared figures (as in its own section)")


class FaultTitleOut(BaseModel):
    zh: str
    en: str
    severity: Severity


class KindCatalogOut(BaseModel):
    zh: str
    en: str
    commands: list[str]
    command_roles: dict[str, CommandRole] = Field(
        description="Per command in `commands`, the lowest role that may send it (admin for what cuts a supply); "
                    "POST /api/devices/{site}/{kind}/{device}/commands refuses it to the roles below (403)")
    faults: dict[str, FaultTitleOut] = Field(description="Per fault code")


class SiteCatalogOut(BaseModel):
    name: str | None = Field(None, description="Left out when the registry gives none")
    power_cap_kw: float | None = Field(None, description="Left out when the registry gives none")
    transformer_kva: float | None = Field(None, description="Left out when the registry gives none")


class RoleTitleOut(BaseModel):
    zh: str
    en: str


class CatalogOut(BaseModel):
    kinds: dict[str, KindCatalogOut] = Field(description="Per kind; kind `hub` titles the hub's own alerts")
    sites: dict[str, SiteCatalogOut] = Field(description="Per site slug")
    roles: dict[str, RoleTitleOut] = Field(description="Per role id (stored and sent as is), its display name: "
                                           "`police` is 警务/Police")


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
    role: Literal["viewer", "maintenance", "operator", "admin", "police"] = Field(
        description="police (警务): reads incidents and exports their evidence, nothing else")


class MeOut(BaseModel):
    name: str
    role: Literal["viewer", "maintenance", "operator", "admin", "police"]


class UserOut(MeOut):
    token: str = Field(description="The new user's API token; shown this once only")


class ErrorOut(BaseModel):
    """Every refusal: a sentence (or, for 422 from FastAPI's own checks, the list of what is wrong)."""

    detail: str | list[dict[str, Any]]


ERRORS: dict[int, str] = {
    400: "The request is malformed (e.g. a Content-Length that is not a byte count)",
    401: "No valid Bearer token (checked before the body is read)",
    403: "The token's role is below what the route needs, or is police (警务), who may read incidents and export "
         "their evidence only (checked before the body is read)",
    404: "No such alert, work order, incident, device kind or district",
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
