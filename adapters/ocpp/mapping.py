"""OCPP 1.6J requests -> the contract's charger messages (channel + JSON payload), as pure functions.

Payloads arrive as the `ocpp` library hands them to a handler: snake-case keys, nested dicts and lists, values
as the charger sent them (MeterValues' numbers are strings). Nothing here does I/O or keeps state: what one call
needs from earlier ones (a session's start, the faults a connector raised) is passed in and given back, so
`central.py` is only the edge that remembers and feeds the pipeline.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from devices.charger import FAULTS

KIND = "charger"
NO_ERROR = "NoError"
OTHER_ERROR = "other_error"


class Message(NamedTuple):
    """One contract message for a charge point: the topic's channel and the payload to encode."""

    channel: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OpenSession:
    """What StopTransaction needs from its StartTransaction (OCPP repeats neither meter start nor time)."""

    connector: int
    meter_start_wh: float
    started_ms: int | None


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake(value: str) -> str:
    """OCPP's enumerations in the contract's lower snake case: `EVCommunicationError` -> `ev_communication_error`,
    `SuspendedEVSE` -> `suspended_evse`, `EVDisconnected` -> `ev_disconnected`."""
    return _CAMEL.sub("_", value).lower()


def epoch_ms(timestamp: str | None) -> int | None:
    """An OCPP dateTime as epoch ms; one without an offset is UTC (as OCPP says); unreadable -> None, so the hub
    uses its receive time rather than refusing a whole MeterValues for one odd clock."""
    if not timestamp:
        return None
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _with_ts(payload: dict[str, Any], timestamp: str | None) -> dict[str, Any]:
    ms = epoch_ms(timestamp)
    if ms is not None:
        payload["ts"] = ms
    return payload


def online(**info: str | None) -> Message:
    """The contract's `state`: online, with what BootNotification told (model, fw) when it did."""
    return Message("state", {"online": True, **{k: v for k, v in info.items() if v}})


def offline() -> Message:
    """The WebSocket closed: the same `state` an MQTT charger's last will publishes."""
    return Message("state", {"online": False})


def boot_notification(p: Mapping[str, Any]) -> list[Message]:
    model = " ".join(str(p[k]) for k in ("charge_point_vendor", "charge_point_model") if p.get(k))
    return [online(model=model or None, fw=p.get("firmware_version"))]


def heartbeat() -> list[Message]:
    """A heartbeat is the charger being heard: `state` online (what keeps it out of the offline check)."""
    return [online()]


def fault_code(error_code: str) -> str:
    """ChargePointErrorCode -> the charger kind's fault code; one the kind does not know is `other_error`."""
    code = snake(error_code)
    return code if code in FAULTS else OTHER_ERROR


def status_notification(p: Mapping[str, Any], raised: Mapping[int, str], open_codes: Iterable[str] = ()
                        ) -> tuple[list[Message], dict[int, str]]:
    """A connector's status as telemetry, and its error code raised or cleared as a fault.

    `raised` is connector -> the fault code it raised (given back updated); `open_codes` are the device's open
    faults the hub knows of. A connector back at NoError clears its own code unless another connector still
    has it, and also any open fault no connector is known to hold (raised before the hub restarted)."""
    connector = int(p["connector_id"])
    error = p.get("error_code") or NO_ERROR
    timestamp = p.get("timestamp")
    messages = [Message("telemetry", _with_ts({"connector": connector, "status": snake(p["status"])}, timestamp))]
    after = dict(raised)
    held_elsewhere = {code for c, code in raised.items() if c != connector}
    if error == NO_ERROR:
        gone = after.pop(connector, None)
        clear = {gone} if gone else set()
        clear |= set(open_codes) - set(raised.values())
        for code in sorted(clear - held_elsewhere):
            messages.append(Message("event", _with_ts({"type": "fault", "code": code, "active": False}, timestamp)))
        return messages, after
    code = fault_code(error)
    before = after.get(connector)
    after[connector] = code
    if before and before != code and before not in held_elsewhere:
        messages.append(Message("event", _with_ts({"type": "fault", "code": before, "active": False}, timestamp)))
    detail = "; ".join(x for x in (f"connector {connector}", None if code == snake(error) else error, p.get("info"),
                                   _vendor(p)) if x)
    messages.append(Message("event", _with_ts({"type": "fault", "code": code, "active": True, "detail": detail},
                                              timestamp)))
    return messages, after


def _vendor(p: Mapping[str, Any]) -> str | None:
    code = p.get("vendor_error_code")
    return f"{p.get('vendor_id') or 'vendor'} {code}" if code else None


ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"
VOLTAGE = "Voltage"
TEMPERATURE = "Temperature"
SOC = "SoC"
_SCALE = {
    (ENERGY, "Wh"): ("energy_kwh", 0.001), (ENERGY, "kWh"): ("energy_kwh", 1.0),
    (POWER, "W"): ("power_kw", 0.001), (POWER, "kW"): ("power_kw", 1.0),
    (CURRENT, "A"): ("current_a", 1.0),
    (VOLTAGE, "V"): ("voltage_v", 1.0),
    (TEMPERATURE, "Celsius"): ("temperature_c", 1.0),
    (SOC, "Percent"): ("soc_pct", 1.0),
}
DEFAULT_UNIT = {ENERGY: "Wh", POWER: "W", CURRENT: "A", VOLTAGE: "V", TEMPERATURE: "Celsius", SOC: "Percent"}
"""OCPP 1.6's defaults when a sampled value names no unit (Wh for energy, W for power, ...)."""
PHASES = ("L1", "L2", "L3")
LINE_TO_NEUTRAL = ("L1-N", "L2-N", "L3-N")


def _reading(sample: Mapping[str, Any]) -> tuple[str, float] | None:
    """(contract field, value in its unit) of one sampled value, or None: a measurand the contract has no field
    for, signed data, a value that is no finite number."""
    if sample.get("format") == "SignedData":
        return None
    measurand = sample.get("measurand") or ENERGY
    unit = sample.get("unit") or DEFAULT_UNIT.get(measurand)
    try:
        value = float(sample["value"])
    except (KeyError, TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    if measurand == TEMPERATURE and unit in ("Fahrenheit", "K"):
        value = (value - 32) * 5 / 9 if unit == "Fahrenheit" else value - 273.15
        unit = "Celsius"
    field = _SCALE.get((measurand, unit))
    if field is None:
        return None
    return field[0], value * field[1]


def _combine(field: str, by_phase: Mapping[str | None, float]) -> float | None:
    """One figure from a measurand's phases: the total when sent; else power summed over L1..L3, current the
    largest phase (the one a limit binds), voltage the mean line-to-neutral one."""
    if None in by_phase:
        return by_phase[None]
    if field == "power_kw":
        phases = [by_phase[p] for p in PHASES + LINE_TO_NEUTRAL if p in by_phase]
        return sum(phases) if phases else None
    if field == "current_a":
        phases = [by_phase[p] for p in PHASES if p in by_phase]
        return max(phases) if phases else None
    if field == "voltage_v":
        phases = [by_phase[p] for p in LINE_TO_NEUTRAL + PHASES if p in by_phase]
        return sum(phases) / len(phases) if phases else None
    return next(iter(by_phase.values()))


NON_NEGATIVE = ("energy_kwh", "power_kw", "current_a", "voltage_v")


def meter_value(connector: int, entry: Mapping[str, Any]) -> Message | None:
    """One MeterValue (one timestamp, many sampled values) as one telemetry message, or None if nothing in it
    is a field of the contract."""
    readings: dict[str, dict[str | None, float]] = {}
    for sample in entry.get("sampled_value") or ():
        reading = _reading(sample)
        if reading is not None:
            readings.setdefault(reading[0], {})[sample.get("phase")] = reading[1]
    payload: dict[str, Any] = {"connector": connector}
    for field, by_phase in readings.items():
        value = _combine(field, by_phase)
        if value is None:
            continue
        if field in NON_NEGATIVE:
            value = max(value, 0.0)  # a meter's -0.0 or a tiny negative import: never a refused message
        if field == "soc_pct":
            value = min(max(value, 0.0), 100.0)
        payload[field] = round(value, 4)
    if len(payload) == 1:
        return None
    return Message("telemetry", _with_ts(payload, entry.get("timestamp")))


def meter_values(p: Mapping[str, Any]) -> list[Message]:
    connector = int(p["connector_id"])
    return [m for entry in p.get("meter_value") or () if (m := meter_value(connector, entry)) is not None]


def start_transaction(p: Mapping[str, Any], transaction_id: int) -> tuple[list[Message], OpenSession]:
    """session_start (its `id` from the transaction id, so a charger's retried StartTransaction is stored once)
    and what the StopTransaction will need."""
    connector = int(p["connector_id"])
    meter_start = float(p["meter_start"])
    started_ms = epoch_ms(p.get("timestamp"))
    event = _with_ts({"type": "session_start", "id": f"tx-{transaction_id}-start", "session": str(transaction_id),
                      "connector": connector, "id_tag": p["id_tag"], "meter_start_kwh": max(meter_start, 0) / 1000},
                     p.get("timestamp"))
    return [Message("event", event)], OpenSession(connector, meter_start, started_ms)


def session_from_event(row: Mapping[str, Any]) -> OpenSession | None:
    """A stored session_start (as the store returns it: epoch ms `time`, its fields) as the session's start,
    for a StopTransaction after the hub restarted."""
    try:
        return OpenSession(int(row["connector"]), float(row["meter_start_kwh"]) * 1000, int(row["time"]))
    except (KeyError, TypeError, ValueError):
        return None


def _begin_from(transaction_data: Sequence[Mapping[str, Any]] | None) -> OpenSession | None:
    """A session's start read back from StopTransaction's transactionData (its Transaction.Begin sample), for a
    session that began before the hub last started."""
    for entry in transaction_data or ():
        for sample in entry.get("sampled_value") or ():
            if sample.get("context") == "Transaction.Begin" and (reading := _reading(sample)):
                if reading[0] == "energy_kwh":
                    return OpenSession(0, reading[1] * 1000, epoch_ms(entry.get("timestamp")))
    return None


def stop_transaction(p: Mapping[str, Any], started: OpenSession | None) -> list[Message]:
    """session_stop: energy and duration from the session's start (given, or read from transactionData); a start
    known neither way counts 0 (the contract's session_stop has no field to say so: the edge logs it)."""
    started = started or _begin_from(p.get("transaction_data"))
    transaction_id = p["transaction_id"]
    stopped_ms = epoch_ms(p.get("timestamp"))
    energy = max(float(p["meter_stop"]) - started.meter_start_wh, 0.0) / 1000 if started else 0.0
    duration = (max(stopped_ms - started.started_ms, 0) / 1000
                if started and started.started_ms is not None and stopped_ms is not None else 0.0)
    event = _with_ts({"type": "session_stop", "id": f"tx-{transaction_id}-stop", "session": str(transaction_id),
                      "energy_kwh": round(energy, 4), "duration_s": duration,
                      "reason": snake(p.get("reason") or "Local")}, p.get("timestamp"))
    return [Message("event", event)]


TX_PROFILE_ID = 1000
"""TxProfile ids are this plus the connector: stable, so a new limit replaces the connector's last one."""
DEFAULT_PROFILE_ID = 999
"""The TxDefaultProfile every limit is also sent as (connector 0: every next session), so it outlives a session."""
STACK_LEVEL = 1
VOLTAGE_V = 230.0
"""Line-to-neutral voltage an A limit is worked out with (China's and Europe's 230/400 V supply)."""
SAFE_PHASES = 3
"""Phases assumed when nothing says: an A limit worked out for three phases gives a single-phase charger a third
of its share (safe for the transformer); one worked out for one phase would give a three-phase charger thrice."""
RATE_UNIT_KEY = "ChargingScheduleAllowedChargingRateUnit"
PHASE_ROTATION_KEY = "ConnectorPhaseRotation"
CONFIG_KEYS = (RATE_UNIT_KEY, PHASE_ROTATION_KEY)
"""What the hub reads with GetConfiguration after a boot: the unit its profiles must use, and whether the
supply is single-phase (`NotApplicable` rotation)."""


@dataclass(frozen=True, slots=True)
class Electrics:
    """How a charger takes a limit: its schedule unit (`W` or `A`), phases and voltage."""

    unit: str = "W"
    phases: int = SAFE_PHASES
    voltage_v: float = VOLTAGE_V


def rate(kw: float, electrics: Electrics) -> float:
    """A power in the charger's unit: W, or A per phase; to 0.1, as the chargers keep OCPP's decimals.
    Rounded down, so a rounded limit never exceeds what the allocator gave."""
    value = kw * 1000 if electrics.unit == "W" else kw * 1000 / (electrics.voltage_v * electrics.phases)
    return math.floor(value * 10 + 1e-6) / 10


def rate_kw(limit: float, electrics: Electrics) -> float:
    """The inverse of `rate`: a limit in the charger's unit as kW."""
    watts = limit if electrics.unit == "W" else limit * electrics.voltage_v * electrics.phases
    return round(watts / 1000, 4)


def _profile(profile_id: int, purpose: str, limits: Sequence[tuple[int, float]], electrics: Electrics,
             transaction_id: int | None = None, start: str | None = None) -> dict[str, Any]:
    periods: list[dict[str, Any]] = []
    for start_s, limit in limits:
        period: dict[str, Any] = {"start_period": start_s, "limit": limit}
        if electrics.unit == "A":
            period["number_phases"] = electrics.phases
        periods.append(period)
    profile: dict[str, Any] = {
        "charging_profile_id": profile_id, "stack_level": STACK_LEVEL, "charging_profile_purpose": purpose,
        "charging_profile_kind": "Relative" if start is None else "Absolute",
        "charging_schedule": {"charging_rate_unit": electrics.unit, "charging_schedule_period": periods},
    }
    if start is not None:
        profile["charging_schedule"]["start_schedule"] = start
    if transaction_id is not None:
        profile["transaction_id"] = transaction_id
    return profile


def set_limit(limit_kw: float, sessions: Mapping[int, OpenSession], electrics: Electrics = Electrics(),
              then_kw: float | None = None, after_s: int | None = None, now: str | None = None
              ) -> list[tuple[int, dict[str, Any]]]:
    """The contract's `set_limit` (the whole charge point) as SetChargingProfile requests: (connector, profile).

    The TxDefaultProfile on connector 0 (stable id) always carries the limit, first: OCPP 1.6 drops a TxProfile
    when its transaction ends, so without it the next car would draw the charger's full power under a cap the
    hub believes holds. The open sessions share the limit equally, each also a TxProfile on its connector
    (which outranks the default for its transaction). With `then_kw` and `after_s` the
    schedule has a second period: `after_s` seconds in, the limit falls to `then_kw` on the charger's own
    clock, so a hub that dies (and stops renewing) leaves its chargers at a safe share. That schedule is
    Absolute from `now` (an OCPP dateTime): a Relative one counts from the session's start, so a step at 900 s
    would already be past for a car charging for an hour."""
    step = then_kw is not None and after_s is not None
    if step and now is None:
        raise ValueError("a dead-man step needs the time it counts from")
    start = now if step else None

    def schedule(share: float) -> list[tuple[int, float]]:
        first = [(0, rate(limit_kw / share, electrics))]
        if then_kw is None or after_s is None:
            return first
        return [*first, (int(after_s), rate(then_kw / share, electrics))]

    default = (0, _profile(DEFAULT_PROFILE_ID, "TxDefaultProfile", schedule(1), electrics, None, start))
    return [default, *((s.connector, _profile(TX_PROFILE_ID + s.connector, "TxProfile", schedule(len(sessions)),
                                              electrics, tx, start))
                       for tx, s in sorted(sessions.items()))]


def first_limit(profile: Mapping[str, Any]) -> float:
    return float(profile["charging_schedule"]["charging_schedule_period"][0]["limit"])


def configured(answer: Mapping[str, Any] | None, known: Electrics) -> Electrics:
    """A GetConfiguration answer (snake-cased `configuration_key` list) read into the charger's electrics.

    `ChargingScheduleAllowedChargingRateUnit` lists `Current` and/or `Power`: W when Power is allowed (watts
    need no phase count), else A. A `ConnectorPhaseRotation` of `NotApplicable` is a single-phase supply; a
    rotation such as `RST` three phases; anything else leaves what was known."""
    unit, phases = known.unit, known.phases
    for entry in (answer or {}).get("configuration_key") or ():
        value = str(entry.get("value") or "")
        if entry.get("key") == RATE_UNIT_KEY:
            allowed = {v.strip().lower() for v in value.split(",")}
            unit = "W" if "power" in allowed else "A" if "current" in allowed else unit
        elif entry.get("key") == PHASE_ROTATION_KEY:
            rotations = {v.partition(".")[2] or v for v in (x.strip() for x in value.split(",")) if v}
            if rotations and rotations <= {"NotApplicable"}:
                phases = 1
            elif rotations & {"RST", "RTS", "SRT", "STR", "TRS", "TSR"}:
                phases = 3
    return Electrics(unit, phases, known.voltage_v)


def phases_seen(p: Mapping[str, Any]) -> int | None:
    """How many phases a MeterValues' per-phase samples show (3 when L2 or L3 carries current or power), or
    None when it has no per-phase current or power."""
    seen = {str(sample.get("phase"))[:2] for entry in p.get("meter_value") or ()
            for sample in entry.get("sampled_value") or ()
            if sample.get("phase") and sample.get("measurand") in ("Current.Import", "Power.Active.Import")}
    if not seen & {"L1", "L2", "L3"}:
        return None
    return 3 if seen & {"L2", "L3"} else 1


def schedule_mismatch(answer: Mapping[str, Any] | None, sent: float, unit: str) -> str | None:
    """Why a GetCompositeSchedule answer does not show the limit sent (None: it does). The composite may be
    lower (the charger's own maximum, another profile): only a higher limit, or none, is a mismatch."""
    status = getattr((answer or {}).get("status"), "value", (answer or {}).get("status"))
    if not answer or status != "Accepted":
        return f"no composite schedule ({status or 'no answer'})"
    schedule = answer.get("charging_schedule") or {}
    periods = schedule.get("charging_schedule_period") or ()
    now = [p for p in periods if int(p.get("start_period", 0)) == 0]
    if not now:
        return "the composite schedule has no period now"
    got, got_unit = float(now[0]["limit"]), str(getattr(schedule.get("charging_rate_unit"), "value", None)
                                                    or schedule.get("charging_rate_unit") or unit)
    if got_unit != unit:
        return f"the composite schedule is in {got_unit}, the profile in {unit}"
    if got > sent + 0.1:
        return f"the charger schedules {got:g} {unit}, not the {sent:g} {unit} sent"
    return None


def stop_session(session: str | None, sessions: Mapping[int, OpenSession]) -> int | str:
    """The transaction id RemoteStopTransaction should stop, or why none can be: the session named (which must
    be a transaction id), else the one open session."""
    if session is not None:
        try:
            return int(session)
        except ValueError:
            return f"session {session!r} is not an OCPP transaction id"
    if len(sessions) == 1:
        return next(iter(sessions))
    return "no session is open" if not sessions else "several sessions are open: say which"


class Reply(NamedTuple):
    """A charger's answer to an operator's command in the contract's reply terms."""

    ok: bool
    error: str | None = None
    result: dict[str, Any] | None = None


OPERATOR_OPS = ("remote_start", "change_availability", "reset", "get_configuration", "change_configuration")


def operator_request(op: str, args: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """An operator's op (validated by the charger kind's args models) as (OCPP action, its snake-case payload)."""
    if op == "remote_start":
        payload: dict[str, Any] = {"id_tag": args["id_tag"]}
        if args.get("connector") is not None:
            payload["connector_id"] = args["connector"]
        return "RemoteStartTransaction", payload
    if op == "change_availability":
        return "ChangeAvailability", {"connector_id": args.get("connector", 0),
                                      "type": "Operative" if args["available"] else "Inoperative"}
    if op == "reset":
        return "Reset", {"type": "Hard" if args.get("hard") else "Soft"}
    if op == "get_configuration":
        return "GetConfiguration", {"key": list(args["keys"])} if args.get("keys") else {}
    if op == "change_configuration":
        return "ChangeConfiguration", {"key": args["key"], "value": args["value"]}
    raise ValueError(f"{op} is no operator op")


OK_STATUSES = {"Accepted", "Scheduled", "RebootRequired"}
"""Statuses that mean done or as good as done (Scheduled: after the running session; RebootRequired: at the next
reset): ok, with the status in the result so the operator sees which."""


def operator_reply(action: str, answer: Mapping[str, Any]) -> Reply:
    """The charger's CALLRESULT (snake-cased) as ok/error/result."""
    if action == "GetConfiguration":
        values = {str(e["key"]): {"value": e.get("value"), "readonly": bool(e.get("readonly"))}
                  for e in answer.get("configuration_key") or ()}
        return Reply(True, None, {"configuration": values, "unknown": list(answer.get("unknown_key") or ())})
    status = str(getattr(answer.get("status"), "value", answer.get("status")))
    if status in OK_STATUSES:
        return Reply(True, None, None if status == "Accepted" else {"status": status})
    return Reply(False, f"{action}: {status}")
