"""Building blocks of a device kind: payload models, the fault table, storage points.

A kind is a declaration (`DeviceKind`) composed from these blocks, not a class to
subclass: the hub never branches on a kind's name, it only looks kinds up in
`devices.REGISTRY`. Everything here is pure and imports nothing from `hub`.
"""

from __future__ import annotations

import enum
import json
import math
import re
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NamedTuple, Union

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

MAX_PAYLOAD_BYTES = 64 * 1024


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """What a fault code means to a person: how bad it is, and its title in Chinese and English."""

    severity: Severity
    zh: str
    en: str


def finite(value: Any) -> bool:
    """False when a JSON value holds NaN or an infinity anywhere (pydantic's JSON parser reads `NaN`,
    `Infinity` and an overflowing `1e400` as floats; JSON has no such numbers and the store cannot keep them),
    or an integer no float can hold (`1` and 400 zeros is `1e400` written out: as a field it would be a float)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(finite(v) for v in value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, int):
        return -sys.float_info.max <= value <= sys.float_info.max
    return True


_WEB_LINK = re.compile(r"https?://[^\s\x00-\x1f\x7f]+", re.IGNORECASE)


def web_link(value: str) -> str:
    """A link a device gives (snapshot, clip, image) must be http(s): screens make it clickable, and
    `javascript:` or `data:` there would run or show whatever the sender chose."""
    if not _WEB_LINK.fullmatch(value):
        raise PydanticCustomError("web_link", "must be an http:// or https:// URL without spaces")
    return value


WebLink = Annotated[str, Field(max_length=2048), AfterValidator(web_link)]
"""An http(s) URL from a device."""


class DevicePayload(BaseModel):
    """Fields every device message may carry. Devices may add fields: they are kept.

    No number may be NaN or infinite: `allow_inf_nan=False` covers the declared fields,
    `_finite_extras` the device-added ones (pydantic does not check those).
    """

    model_config = ConfigDict(extra="allow", frozen=False, allow_inf_nan=False)

    @model_validator(mode="after")
    def _finite_extras(self) -> DevicePayload:
        extra = self.__pydantic_extra__
        if extra:
            for name, value in extra.items():
                if not finite(value):
                    raise PydanticCustomError("finite_number", "{name} is NaN or infinite: JSON numbers must be finite",
                                              {"name": name})
        return self

    ts: AwareDatetime | StrictInt | None = Field(
        None, description="When the device observed it: ISO 8601 with offset, or epoch milliseconds"
    )
    seq: int | None = Field(None, ge=0, description="Per-device counter, to count gaps and duplicates")


class EventPayload(DevicePayload):
    """A discrete happening; `id` lets the hub store a redelivered event once."""

    type: str
    id: str | None = Field(None, min_length=1, max_length=128)


class StatePayload(DevicePayload):
    """Retained `state` message, also the device's MQTT last will."""

    online: bool
    fw: str | None = None
    ip: str | None = None
    model: str | None = None


class ReplyPayload(DevicePayload):
    """A device's answer to a `cmd`."""

    id: str = Field(min_length=1, max_length=128)
    ok: bool
    error: str | None = None


class CommandPayload(BaseModel):
    """Hub to device on `.../cmd`."""

    model_config = ConfigDict(extra="forbid")

    id: str
    op: str
    args: dict[str, Any] = Field(default_factory=dict)


class CommandArgs(BaseModel):
    """Arguments of a command op; unknown arguments are refused, not ignored, and so are NaN and infinities
    (`1e400` reads as one: sent on, it reached a charger as `null`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def fault_model(kind: str, faults: Mapping[str, FaultSpec]) -> type[EventPayload]:
    """The one fault event shape, with `code` limited to this kind's fault table."""
    codes = Literal[tuple(faults)]  # type: ignore[valid-type]
    return create_model(  # type: ignore[call-overload, no-any-return]
        f"{kind.capitalize()}Fault",
        __base__=EventPayload,
        __doc__=f"{kind} fault: active=true raises it, active=false clears it.",
        type=(Literal["fault"], ...),
        code=(codes, ...),
        active=(bool, ...),
        detail=(str | None, None),
    )


class Point(NamedTuple):
    """One storage point; a tuple so a batch encodes compactly (orjson writes arrays)."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, bool | int | float | str]
    time_ms: int


@dataclass(slots=True)
class Accepted:
    """A message that passed every check, with its point time settled.

    `time_ms` is the device's `ts` when it gave a sane one, else the receive time.
    """

    site: str
    kind: str
    device: str
    channel: str
    payload: BaseModel
    received_ms: int
    time_ms: int
    lag_ms: int
    tags: Mapping[str, str] = field(default_factory=dict)
    """Registry tags (such as `building`) for telemetry points."""
    retained: bool = False
    """A retained delivery: it refreshes live state, and is not stored (it was, when first published)."""
    _fields: dict[str, bool | int | float | str] | None = field(default=None, repr=False, compare=False)

    def fields(self) -> dict[str, bool | int | float | str]:
        """The payload's fields but `ts`, `seq`, `type`, `id`, as `payload_fields` makes them; made once, since
        both the storage point and the live state want them (do not change the dict: copy it)."""
        if self._fields is None:
            self._fields = payload_fields(self.payload, COMMON_FIELDS)
        return self._fields


class Invalid(ValueError):
    """A payload that is well-formed JSON but breaks the contract; `detail` says where."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


COMMON_FIELDS = frozenset({"ts", "seq", "type", "id"})
TAG_NAMES = frozenset({"site", "kind", "device", "type", "code", "label", "building"})
RESERVED_FIELD_NAMES = TAG_NAMES | {"time"}
"""Names a device-added field may not keep: tags' names, and `time`, which InfluxDB refuses as a field."""
ADDED_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
"""What a device-added field may be called. A name is a storage key: nothing that line protocol or InfluxQL
would have to escape, and no way to pass for another field (a message with another name is invalid)."""


def field_value(value: Any) -> bool | int | float | str:
    """A storage field value for a device-added field.

    Numbers become floats, so a device that sends `3` and later `3.5` cannot cause
    an InfluxDB field type conflict; objects and lists are kept as JSON text.
    """
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return float(value)
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits inside: orjson writes none
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def payload_fields(payload: BaseModel, exclude: frozenset[str]) -> dict[str, bool | int | float | str]:
    """Declared fields as they are, device-added fields made storage-safe; None dropped."""
    # Plain attribute access: validated models hold only str, int, float and bool
    # here (Literal enumerations are str), and this is several times cheaper than model_dump.
    out: dict[str, Any] = {k: v for k, v in payload.__dict__.items() if v is not None and k not in exclude}
    extra = payload.__pydantic_extra__
    if extra:
        for name, value in extra.items():
            if value is None:
                continue
            if name in RESERVED_FIELD_NAMES or name in exclude:
                name = f"{name}_value"  # a tag and a field may never share a name
            out[name] = field_value(value)
    return out


class KindSettings(BaseModel):
    """A kind's thresholds. Each field is also a hub setting of the same name (`SMARTHUB_<NAME>`, or the
    key in the TOML file), so names must be unique across kinds; a kind without thresholds keeps this empty model."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class TodayFigure:
    """A figure of today (since China midnight), aggregated in the store over the kind's events."""

    aggregate: Literal["count", "sum", "mean", "max"]
    field: str
    where: Mapping[str, str]
    """Tags the events must have (their `type` included)"""
    digits: int | None = None
    """None: a whole number; else rounded to this many decimals"""


class LiveDevice(NamedTuple):
    """One device as the overview sees it now."""

    online: bool
    faulted: bool
    """Online with an open fault"""
    telemetry: Mapping[str, Any]
    """Its last telemetry fields (empty when never heard)"""
    open_faults: Collection[str] = ()
    """Codes of the faults it reported open (whether online or not); a fault the hub raised is not among them"""
    open_alerts: Collection[str] = ()
    """Codes of its open and acknowledged alerts, the ones the hub's rules raised included"""


LiveFigures = Callable[[Sequence[LiveDevice], Sequence[Any]], dict[str, Any]]
"""(the kind's devices in the sites asked for, those sites' registry entries) -> figures; pure."""


@dataclass(frozen=True)
class OverviewSection:
    """The kind's part of `GET /api/overview`: a section of its own (or figures at the top level)."""

    key: str | None
    """The section's name in the answer; None puts the figures at the top level"""
    live: LiveFigures | None = None
    today: Mapping[str, TodayFigure] = field(default_factory=dict)
    inside: str | None = None
    """The name under which the kind's inside count (`DeviceKind.inside`) is given"""
    today_use: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Figures of today's growth of a register series the kind declares: name -> (series, value of its split),
    such as the water used today; read from the store at most once a minute (they move slowly)"""


class Gauge(NamedTuple):
    """One community's reading of a kind's district figure (`DistrictGauge`)."""

    value: float
    """The figure itself (cars in service, kW drawn)"""
    of: float | None
    """What it is measured against (cars in all, the cap in kW); None: nothing to measure against"""
    share: float | None
    """value / of, when there is an `of`"""
    strain: float
    """0 (all well) to 1 (as bad as it gets): what the district wall's worst-first score weighs"""


DistrictReading = Callable[[Mapping[str, Any], Any, str], Gauge | None]
"""(the kind's overview live figures at one site, the kind's controller or None, the site's slug) -> its gauge
there, or None when the site has nothing to gauge (no such device); pure but for asking the controller."""


@dataclass(frozen=True, slots=True)
class DistrictGauge:
    """The kind's figure on the district wall (街道联动指挥中心): one gauge per community, such as the share of
    cars in service, read from what the kind's overview figures (`OverviewSection.live`) say of that site."""

    name: str
    """Unique across kinds; the gauge's key in `GET /api/district`"""
    zh: str
    en: str
    read: DistrictReading
    unit: str | None = None
    """Of `value` and `of` (None: a count)"""


@dataclass(frozen=True, slots=True)
class InsideSpec:
    """What keeps a count of things inside a site: events that say who went in or out, and whether they passed."""

    event: str
    """The event type (`passage`)"""
    key: str
    """The field that identifies what passed (personal: it stays in memory, only counts leave)"""
    direction: str
    """The field saying `in` or `out`"""
    decision: str
    """The field saying whether it was let through"""
    let_through: frozenset[str]
    """Its values that mean it passed"""


@dataclass(frozen=True, slots=True)
class CountSeries:
    """Events counted per hour over a day, one series per value of a field (`/api/series/<name>`)."""

    event: str
    field: str
    """The field counted (one every event has)"""
    split: str
    """The tag or field whose values make the series"""
    values: tuple[str, ...]
    """Its values, each one series, named by the value"""


@dataclass(frozen=True, slots=True)
class SumOfMeans:
    """A telemetry field averaged per device and bucket, then summed over the kind's registered devices."""

    field: str
    count_key: str
    """The answer's key for how many devices were summed"""
    value_key: str
    """The answer's key for the series"""
    digits: int = 2


@dataclass(frozen=True, slots=True)
class RegisterIncrease:
    """A cumulative register's growth per bucket (what was used), summed over the kind's devices, one series per
    value of a field (`/api/series/<name>?<split>=<value>`); a reset event restarts a device's register."""

    field: str
    """The register, which only grows but at a reset"""
    split: str
    """The field whose value the caller picks (the utility, say)"""
    units: Mapping[str, str]
    """Each value of `split` and its register's unit"""
    reset_event: str
    """The event type announcing that a device's register restarts"""
    reset_from: str
    """That event's field: the old register's last value"""
    reset_to: str
    """That event's field: the new register's first value"""
    digits: int = 3


Series = CountSeries | SumOfMeans | RegisterIncrease
"""A chart series a kind declares."""


@dataclass(frozen=True, slots=True)
class Refused:
    """Why an otherwise valid message must not be stored: a dead-letter reason and its detail."""

    reason: str
    detail: str


Check = Callable[[Accepted, dict[str, Any]], Refused | None]
"""A kind's check of a valid message against what came before from the same device: a pure function of the
message and that device's memory (its own to keep, a few values), giving why the message is refused, or None.
The pipeline runs a kind's checks before it makes points, and dead-letters a refusal under its reason."""


CommandRole = Literal["operator", "admin"]
"""Who may send a command: operators, or only admins (cutting a supply, say)."""


@dataclass(frozen=True)
class DeviceKind:
    """Everything the hub knows about one kind of device."""

    name: str
    zh: str
    en: str
    telemetry: type[DevicePayload]
    events: tuple[type[EventPayload], ...]
    faults: Mapping[str, FaultSpec]
    commands: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    """op -> model of its `args`; empty for kinds never driven remotely."""
    event_tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """event type -> payload fields stored as tags (low cardinality only)."""
    personal: tuple[str, ...] = ()
    """Fields that identify a person or vehicle (masked by the API, never tags)."""
    examples: Mapping[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    """channel -> valid example payloads, used by tests and simulators."""
    checks: tuple[Check, ...] = ()
    """Checks a valid message must pass to be stored (see `Check`); empty for most kinds, and then free."""
    refusals: frozenset[str] = frozenset()
    """The dead-letter reasons its checks give (`Refused.reason`), listed with the core's (`hub.ingest.decode`)"""
    rules: tuple[Any, ...] = ()
    """Derived-alert rules (see devices.rules): pure functions of a message, live state, time and `settings`."""
    settings: type[KindSettings] = KindSettings
    """The thresholds its rules read; set by the hub's settings of the same names."""
    derived: Mapping[str, FaultSpec] = field(default_factory=dict)
    """Codes only its rules raise (its devices' own codes are in `faults`)."""
    team: str | None = None
    """Who gets its work orders; None: the property team."""
    work_orders: frozenset[str] = frozenset()
    """Codes (device or derived) whose new alert opens a work order by itself."""
    command_roles: Mapping[str, CommandRole] = field(default_factory=dict)
    """op -> the role it needs; an op not listed needs the operator role."""
    no_commands: str | None = None
    """Why a kind without commands takes none, said in the refusal."""
    not_failures: frozenset[str] = frozenset()
    """Codes (device or derived) whose alerts are no failure of the device in `/api/reliability`: a maintenance
    hint, or an alert about how a site shares something rather than a broken device."""
    reliability_default: bool = False
    """The kind `/api/reliability` reports when the caller names none (one kind says so)."""
    overview: OverviewSection | None = None
    """Its figures on the big screen, besides the devices online and faulted every kind gets."""
    district: DistrictGauge | None = None
    """Its gauge per community on the district wall; needs `overview.live` (the figures it reads)."""
    series: Mapping[str, Series] = field(default_factory=dict)
    """Named chart series the hub builds from its points (`hub.series`); names unique across kinds."""
    inside: InsideSpec | None = None
    """Its events count what is inside each site now (`hub.inside`); one kind at most."""
    controllers: tuple[Callable[[], Any], ...] = ()
    """Factories of the site-level loops the hub runs for it (`hub.control`): objects with a `name`, an
    `async run(ctx)`, and optionally `on_message(msg, state)` and `routes()`."""

    def __post_init__(self) -> None:
        if self.district is not None and (self.overview is None or self.overview.live is None):
            raise ValueError(f"kind {self.name!r} has a district gauge but no overview live figures for it to read")
        if self.checks and not self.refusals:
            raise ValueError(f"kind {self.name!r} has checks but declares no refusals: name the dead-letter reasons "
                             "they give")
        object.__setattr__(self, "fault", fault_model(self.name, self.faults))
        members = (*self.events, self.fault)  # type: ignore[attr-defined]
        if len(members) == 1:
            event_adapter: TypeAdapter[Any] = TypeAdapter(members[0])
        else:  # a discriminated union: pydantic picks the model by `type` without trying each
            event_adapter = TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # noqa: UP007
        object.__setattr__(self, "validate_event", event_adapter.validate_python)
        adapters: dict[str, Any] = {
            "telemetry": self.telemetry.model_validate_json,
            "event": event_adapter.validate_json,
            "state": StatePayload.model_validate_json,
            "reply": ReplyPayload.model_validate_json,
        }
        object.__setattr__(self, "_validators", adapters)
        tags = {"fault": ("code",), **self.event_tags}
        object.__setattr__(self, "_event_tags", tags)

    validate_event: Any = field(init=False, repr=False, compare=False)
    """dict -> the event's model (for simulators building payloads); set in __post_init__."""

    def command_role(self, op: str) -> CommandRole:
        """The role that may send `op`."""
        return self.command_roles.get(op, "operator")

    @property
    def personal_event_types(self) -> tuple[str, ...]:
        """Event types with a personal field (their stored points are forgotten after a while)."""
        return tuple(m.model_fields["type"].annotation.__args__[0] for m in self.events  # type: ignore[union-attr]
                     if set(self.personal) & set(m.model_fields))

    @property
    def event_types(self) -> tuple[str, ...]:
        """Every event type this kind may publish (the fault event included)."""
        return tuple(m.model_fields["type"].annotation.__args__[0] for m in self.events) + ("fault",)  # type: ignore[union-attr]

    def validate(self, channel: str, raw: bytes) -> BaseModel:
        """Parse and check a raw payload for a channel; raises pydantic's ValidationError or Invalid."""
        try:
            validate = self._validators[channel]  # type: ignore[attr-defined]
        except KeyError:
            raise Invalid(f"the hub does not accept messages on channel {channel!r}") from None
        payload: BaseModel = validate(raw)
        if channel == "telemetry" and not (payload.model_fields_set - COMMON_FIELDS):
            raise Invalid("telemetry carries no field")
        extra = payload.__pydantic_extra__
        if extra:
            for name in extra:
                if not ADDED_FIELD_NAME.fullmatch(name):
                    raise Invalid(f"field name {name[:80]!r} is not allowed: a field a device adds is named like "
                                  "`vendor_temp_c` (letters, digits, _ . -; a letter or _ first; 64 at most)")
        return payload

    def to_points(self, msg: Accepted) -> list[Point]:
        """Map an accepted message to storage points, per the contract's storage schema."""
        payload = msg.payload
        if msg.channel == "telemetry":
            tags = {"site": msg.site, "device": msg.device, **msg.tags}
            fields = msg.fields().copy()
            measurement = self.name
        elif msg.channel == "state":
            tags = {"site": msg.site, "kind": self.name, "device": msg.device}
            fields = msg.fields().copy()
            measurement = "device_state"
        else:
            event_type = payload.type if msg.channel == "event" else "reply"  # type: ignore[attr-defined]
            tags = {"site": msg.site, "device": msg.device, "type": event_type}
            tag_fields = self._event_tags.get(event_type, ())  # type: ignore[attr-defined]
            for name in tag_fields:
                tags[name] = str(getattr(payload, name))
            fields = payload_fields(payload, COMMON_FIELDS.union(tag_fields))
            event_id = getattr(payload, "id", None)
            if event_id is not None:
                fields["id"] = event_id
            measurement = f"{self.name}_event"
        seq = getattr(payload, "seq", None)
        if seq is not None:
            fields["seq"] = seq
        fields["lag_ms"] = msg.lag_ms
        return [Point(measurement, tags, fields, msg.time_ms)]


def describe_error(exc: ValidationError, limit: int = 5) -> str:
    """A short, human-readable summary of a validation error (field path and message)."""
    parts = []
    for err in exc.errors(include_url=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)
