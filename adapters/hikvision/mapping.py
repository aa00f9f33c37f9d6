"""Hikvision ISAPI event documents -> the contract's gate and access messages, as pure functions.

Input is the document as `body` reads it (XML as dicts of strings, JSON as sent). ANPR alerts
(`EventNotificationAlert`, `eventType=ANPR`) become `gate` passages; access-controller events (ISAPI AcsEvent,
`AccessControllerEvent`) become `access` events, faults and door telemetry; a heartbeat (or any alert with
`eventState=inactive`) is the device being heard. Every event gets a stable id from what the device itself says
(the AcsEvent `serialNo`; for ANPR the channel, time, lane and plate), so the pipeline stores an event once however
often the device sends it: a retry, or the history replay (`alarmDataType=1`) after an outage.

The access codes are Hikvision's `majorEventType`/`subEventType` pairs (HCNetSDK's MAJOR_*/MINOR_* constants, as
named in tests/adapters/hikvision/fixtures/README.md); a code not in these tables is no error: it is the device being
heard, and nothing is stored for it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

GATE = "gate"
ACCESS = "access"
KINDS = (GATE, ACCESS)
NO_PLATE = "无牌"
"""What a passage without a readable plate carries as its plate (the contract needs one)."""
NO_PLATE_SENTINELS = frozenset({"", "noplate", "unknown", "无车牌", "无牌", "车牌", "none", "null"})
MAX_PLATE = 16


class Message(NamedTuple):
    channel: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Mapped:
    """What one document becomes: for which kind (None: any, a heartbeat), and the messages."""

    kind: str | None
    messages: list[Message]
    what: str
    """A short name for the log and the answer: `passage`, `access`, `fault`, `heartbeat`, `ignored 5/0x17`."""


class Unmapped(ValueError):
    """A document this adapter cannot turn into contract messages: `reason` a short code, the text a person's."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def _int(value: Any, name: str) -> int | None:
    """An integer as XML (text, maybe `0x1b`) or JSON (a number) gives it; absent -> None; anything else refused."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Unmapped("bad_field", f"{name} must be an integer, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 16) if text[:2].lower() == "0x" else int(text, 10)  # "075" is 75, "0x1b" is 27
        except ValueError:
            pass
    raise Unmapped("bad_field", f"{name} must be an integer, not {str(value)[:40]!r}")


def epoch_ms(value: Any) -> int | None:
    """ISAPI's `dateTime` (ISO 8601, offset given) as epoch ms; one without an offset is the device's local time,
    unknown to the hub, so None (the hub's receive time is used)."""
    text = _text(value)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return int(moment.timestamp() * 1000) if moment.tzinfo is not None else None


def _with_ts(payload: dict[str, Any], ts: int | None) -> dict[str, Any]:
    if ts is not None:
        payload["ts"] = ts
    return payload


def _token(value: Any) -> str:
    """A vendor token compared whatever its casing and punctuation: `SUVMPV`, `suv_mpv`, `Suv-Mpv` -> `suvmpv`."""
    return "".join(c for c in _text(value).lower() if c.isalnum())


def stable_id(prefix: str, *parts: Any) -> str:
    digest = hashlib.sha256("\x1f".join(_text(p) for p in parts).encode()).hexdigest()[:20]
    return f"hik-{prefix}-{digest}"


# -- ANPR -> gate passage ---------------------------------------------------------------------------------------

PLATE_COLOURS = {"blue": "blue", "yellow": "yellow", "green": "green", "white": "white", "black": "black",
                 "newenergygreen": "green", "yellowgreen": "green", "greenyellow": "green", "gradientgreen": "green",
                 "civilaviationblack": "black", "civilaviationgreen": "green"}
"""ISAPI `plateColor` tokens (normalised by `_token`) -> the contract's colours; others are `unknown`."""
COLOUR_PREFIXES = (("黄绿", "green"), ("渐变绿", "green"), ("蓝", "blue"), ("黄", "yellow"), ("绿", "green"),
                   ("白", "white"), ("黑", "black"))
"""Colour words Hikvision's Chinese firmware puts before the plate (`蓝琼A12345`), longest first."""
VEHICLE_CLASSES = {
    "car": ("vehicle", "car", "smallcar", "sedan", "suv", "mpv", "suvmpv", "van", "minivan", "passengercar",
            "hatchback", "minicar", "pickup", "jeep", "vehiclesmall", "smallvehicle", "microcar"),
    "truck": ("truck", "largetruck", "smalltruck", "lighttruck", "heavytruck", "minitruck", "pickuptruck",
              "tanker", "dangerousgoodsvehicle", "dumptruck", "lorry"),
    "bus": ("bus", "largebus", "midbus", "middlebus", "minibus", "coach", "schoolbus"),
    "motorcycle": ("motorcycle", "motorbike", "twowheelvehicle", "twowheeler", "ebike", "electricbicycle",
                   "scooter"),
}
_CLASS_OF = {token: name for name, tokens in VEHICLE_CLASSES.items() for token in tokens}
DIRECTIONS = {"forward": "in", "in": "in", "entry": "in", "enter": "in", "approach": "in",
              "reverse": "out", "out": "out", "exit": "out", "leave": "out", "away": "out"}
"""ISAPI `direction` tokens: `forward` is a vehicle driving towards the camera, which a lane camera watches
arrive (in); `reverse` one driving away (out). `unknown` takes the push URL's `?direction=`."""
LISTS = {"allowlist": ("resident", "allowed"), "whitelist": ("resident", "allowed"),
         "blocklist": ("blacklisted", "denied"), "blacklist": ("blacklisted", "denied")}
"""`vehicleListName` -> (category, decision); a plate on no list is a guard's call: (unknown, manual)."""


def plate_and_colour(raw: Any, colour_token: Any) -> tuple[str, str]:
    """(plate, colour): the colour word stripped off the plate, the ISAPI `plateColor` token first, the
    stripped word second; the no-plate sentinels become `NO_PLATE` with colour unknown."""
    text = "".join(_text(raw).split())
    colour = PLATE_COLOURS.get(_token(colour_token), "unknown")
    for word, named in COLOUR_PREFIXES:
        if text.startswith(word) and len(text) > len(word):
            text = text[len(word):]
            if colour == "unknown":
                colour = named
            break
    if text.lower() in NO_PLATE_SENTINELS:
        return NO_PLATE, "unknown"
    if len(text) > MAX_PLATE:
        raise Unmapped("bad_field", f"licensePlate {text[:40]!r} is longer than {MAX_PLATE} characters")
    return text, colour


def vehicle_class(*tokens: Any) -> str:
    """The first token that names a class (ANPR's `vehicleType`, then `vehicleInfo.vehicleType`), else other."""
    for token in tokens:
        found = _CLASS_OF.get(_token(token))
        if found:
            return found
    return "other"


def confidence(value: Any) -> float:
    """`confidenceLevel` 0-100 as 0..1 (clamped); absent -> 0."""
    if value is None or value == "":
        return 0.0
    try:
        level = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        level = math.nan
    if not math.isfinite(level):
        raise Unmapped("bad_field", f"confidenceLevel must be a number 0-100, not {str(value)[:40]!r}")
    return round(min(max(level, 0.0), 100.0) / 100, 4)


def anpr(alert: dict[str, Any], default_direction: str | None = None, snapshot: str | None = None) -> Mapped:
    section = alert.get("ANPR")
    if not isinstance(section, dict):
        raise Unmapped("bad_document", "an ANPR alert without its ANPR section")
    plate, colour = plate_and_colour(section.get("licensePlate"), section.get("plateColor"))
    direction = DIRECTIONS.get(_token(section.get("direction"))) or default_direction
    if direction not in ("in", "out"):
        raise Unmapped("no_direction", f"the ANPR direction is {_text(section.get('direction'))[:20]!r}: add "
                       "?direction=in or ?direction=out to the device's push URL (its HTTP listening host path)")
    info = section.get("vehicleInfo") if isinstance(section.get("vehicleInfo"), dict) else {}
    category, decision = LISTS.get(_token(section.get("vehicleListName")), ("unknown", "manual"))
    if plate == NO_PLATE:
        category, decision = "unknown", "manual"
    ts = epoch_ms(alert.get("dateTime"))
    lane = _text(section.get("line")) or _text(alert.get("channelID")) or "1"
    payload: dict[str, Any] = {
        "type": "passage",
        "id": stable_id("anpr", alert.get("channelID"), alert.get("dateTime"), lane, plate),
        "plate": plate, "plate_color": colour, "direction": direction, "lane": lane[:64],
        "vehicle_class": vehicle_class(section.get("vehicleType"), info.get("vehicleType")),
        "confidence": confidence(section.get("confidenceLevel")),
        "decision": decision, "category": category,
    }
    if snapshot:
        payload["image"] = snapshot
    if _text(section.get("alarmDataType")) == "1":
        payload["replayed"] = True  # sent again from the device's memory after an outage
    return Mapped(GATE, [Message("event", _with_ts(payload, ts))], "passage")


# -- AcsEvent -> access ----------------------------------------------------------------------------------------

MAJOR_ALARM, MAJOR_EXCEPTION, MAJOR_OPERATION, MAJOR_EVENT = 0x1, 0x2, 0x3, 0x5

GRANTED: dict[tuple[int, int], str] = {
    (MAJOR_EVENT, 0x01): "card", (MAJOR_EVENT, 0x02): "card", (MAJOR_EVENT, 0x28): "card",
    (MAJOR_EVENT, 0x2B): "card", (MAJOR_EVENT, 0x26): "fingerprint", (MAJOR_EVENT, 0x2E): "fingerprint",
    (MAJOR_EVENT, 0x45): "fingerprint", (MAJOR_EVENT, 0x48): "fingerprint", (MAJOR_EVENT, 0x4B): "face",
    (MAJOR_EVENT, 0x36): "face", (MAJOR_EVENT, 0x39): "face", (MAJOR_EVENT, 0x3C): "face",
    (MAJOR_EVENT, 0x3F): "face", (MAJOR_EVENT, 0x42): "face", (MAJOR_EVENT, 0x4D): "face",
    (MAJOR_EVENT, 0x69): "face", (MAJOR_EVENT, 0x9C): "qr", (MAJOR_EVENT, 0xB5): "pin",
    (MAJOR_OPERATION, 0x400): "remote",
}
"""(major, minor) -> method of an attempt the terminal granted (MINOR_*_PASS; 0x3/0x400 MINOR_REMOTE_OPEN_DOOR)."""
DENIED: dict[tuple[int, int], tuple[str, str]] = {
    (MAJOR_EVENT, 0x03): ("card", "other"), (MAJOR_EVENT, 0x06): ("card", "other"),
    (MAJOR_EVENT, 0x07): ("card", "outside_schedule"), (MAJOR_EVENT, 0x08): ("card", "expired"),
    (MAJOR_EVENT, 0x09): ("card", "unknown"), (MAJOR_EVENT, 0x0A): ("card", "anti_passback"),
    (MAJOR_EVENT, 0x29): ("card", "other"), (MAJOR_EVENT, 0x2C): ("card", "other"),
    (MAJOR_EVENT, 0x27): ("fingerprint", "unknown"), (MAJOR_EVENT, 0x31): ("fingerprint", "unknown"),
    (MAJOR_EVENT, 0x2F): ("fingerprint", "other"), (MAJOR_EVENT, 0x46): ("fingerprint", "other"),
    (MAJOR_EVENT, 0x49): ("fingerprint", "other"), (MAJOR_EVENT, 0x4C): ("face", "unknown"),
    (MAJOR_EVENT, 0x50): ("face", "unknown"), (MAJOR_EVENT, 0x37): ("face", "other"),
    (MAJOR_EVENT, 0x3A): ("face", "other"), (MAJOR_EVENT, 0x3D): ("face", "other"),
    (MAJOR_EVENT, 0x40): ("face", "other"), (MAJOR_EVENT, 0x43): ("face", "other"),
    (MAJOR_EVENT, 0x4E): ("face", "other"), (MAJOR_EVENT, 0x68): ("face", "other"),
    (MAJOR_EVENT, 0x70): ("face", "other"), (MAJOR_EVENT, 0x71): ("card", "blacklisted"),
    (MAJOR_EVENT, 0x96): ("pin", "other"), (MAJOR_EVENT, 0x97): ("pin", "other"),
    (MAJOR_EVENT, 0x94): ("pin", "other"), (MAJOR_EVENT, 0xC3): ("pin", "expired"),
    (MAJOR_EVENT, 0x98): ("card", "unknown"), (MAJOR_EVENT, 0x9D): ("qr", "unknown"),
}
"""(major, minor) -> (method, reason) of a refused attempt (MINOR_*_FAIL, NO_RIGHT, INVALID_PERIOD, OUT_OF_DATE,
INVALID_CARD, ANTI_SNEAK_FAIL, CERTIFICATE_BLACK_LIST, ...); `currentVerifyMode` refines the method when it names
one."""
FAULTS: dict[tuple[int, int], tuple[str, bool]] = {
    (MAJOR_EVENT, 0x1B): ("door_forced", True),  # MINOR_DOOR_OPEN_ABNORMAL 门异常打开
    (MAJOR_EVENT, 0x87): ("door_forced", True),  # MINOR_FORCE_ACCESS 外力冲撞
    (MAJOR_EVENT, 0x1C): ("door_held_open", True),  # MINOR_DOOR_OPEN_TIMEOUT 门打开超时
    (MAJOR_EVENT, 0x85): ("tailgating", True),  # MINOR_TRAILING 尾随通行
    (MAJOR_ALARM, 0x404): ("tamper", True),  # MINOR_HOST_DESMANTLE_ALARM 设备防拆报警
    (MAJOR_ALARM, 0x405): ("tamper", False),  # MINOR_HOST_DESMANTLE_RESUME
    (MAJOR_ALARM, 0x406): ("tamper", True),  # MINOR_CARD_READER_DESMANTLE_ALARM 读卡器防拆报警
    (MAJOR_ALARM, 0x407): ("tamper", False),  # MINOR_CARD_READER_DESMANTLE_RESUME
}
DOOR: dict[tuple[int, int], str] = {(MAJOR_EVENT, 0x19): "open", (MAJOR_EVENT, 0x1A): "closed"}
"""MINOR_DOOR_OPEN_NORMAL / MINOR_DOOR_CLOSE_NORMAL (the door contact) as telemetry; a closed door also clears
`door_forced` and `door_held_open`."""
VERIFY_MODES = {"face": "face", "card": "card", "fingerprint": "fingerprint", "password": "pin", "pin": "pin",
                "qrcode": "qr", "qr": "qr"}
"""`currentVerifyMode` when it names one single method (`cardOrFace` names two: the code's method stays)."""


def _method(default: str, mode: Any) -> str:
    return VERIFY_MODES.get(_token(mode), default)


def access_event(alert: dict[str, Any], snapshot: str | None = None) -> Mapped:
    event = alert.get("AccessControllerEvent")
    if not isinstance(event, dict):
        raise Unmapped("bad_document", "an AccessControllerEvent alert without its AccessControllerEvent object")
    major = _int(event.get("majorEventType"), "majorEventType")
    minor = _int(event.get("subEventType"), "subEventType")
    serial = _int(event.get("serialNo"), "serialNo")
    if major is None or minor is None:
        raise Unmapped("bad_document", "an AccessControllerEvent without majorEventType and subEventType")
    ts = epoch_ms(alert.get("dateTime"))
    code = (major, minor)
    event_id = (f"hik-acs-{serial}" if serial is not None
                else stable_id("acs", alert.get("dateTime"), major, minor, event.get("employeeNoString")))
    door_no = _text(event.get("doorNo")) or _text(event.get("cardReaderNo"))
    subject = (_text(event.get("employeeNoString")) or _text(event.get("employeeNo"))
               or _text(event.get("cardNo")) or "unknown")[:128]
    if code in GRANTED or code in DENIED:
        granted = code in GRANTED
        method, reason = (GRANTED[code], None) if granted else DENIED[code]
        payload: dict[str, Any] = {"type": "access", "id": event_id, "method": _method(method,
                                   event.get("currentVerifyMode")), "subject": subject,
                                   "result": "granted" if granted else "denied"}
        if reason:
            payload["reason"] = reason
        if door_no:
            payload["door"] = door_no
        if snapshot:
            payload["image"] = snapshot
        return Mapped(ACCESS, [Message("event", _with_ts(payload, ts))], "access")
    if code in FAULTS:
        fault, active = FAULTS[code]
        detail = f"Hikvision {major}/{minor:#x}" + (f", door {door_no}" if door_no else "")
        payload = {"type": "fault", "id": event_id, "code": fault, "active": active, "detail": detail}
        return Mapped(ACCESS, [Message("event", _with_ts(payload, ts))], "fault")
    if code in DOOR:
        door = DOOR[code]
        messages = [Message("telemetry", _with_ts({"door": door}, ts))]
        if door == "closed":
            messages += [Message("event", _with_ts({"type": "fault", "id": f"{event_id}-{fault}", "code": fault,
                                                    "active": False}, ts))
                         for fault in ("door_forced", "door_held_open")]
        return Mapped(ACCESS, messages, f"door {door}")
    return Mapped(ACCESS, [online()], f"ignored {major}/{minor:#x}")


# -- the document ----------------------------------------------------------------------------------------------

def online() -> Message:
    return Message("state", {"online": True})


def alert_of(document: dict[str, Any]) -> dict[str, Any]:
    """The alert itself: XML's root element (`EventNotificationAlert`), or JSON's top-level object."""
    if len(document) == 1:
        (only,) = document.values()
        if isinstance(only, dict):
            return only
    return document


def linked(mapped: Mapped, snapshot: str) -> Mapped:
    """`mapped` with its first message (the event) linking the snapshot kept for it: what `map_document` gives
    with `snapshot=`, without mapping the document again."""
    first, *rest = mapped.messages
    return replace(mapped, messages=[Message(first.channel, {**first.payload, "image": snapshot}), *rest])


def map_document(document: dict[str, Any], default_direction: str | None = None,
                 snapshot: str | None = None) -> Mapped:
    """One posted document as contract messages; `Unmapped` says why not."""
    alert = alert_of(document)
    event_type = _token(alert.get("eventType"))
    if event_type == "heartbeat" or (_token(alert.get("eventState")) == "inactive" and event_type != "anpr"):
        return Mapped(None, [online()], "heartbeat")
    if event_type == "anpr":
        return anpr(alert, default_direction, snapshot)
    if event_type == "accesscontrollerevent" or "AccessControllerEvent" in alert:
        return access_event(alert, snapshot)
    if not event_type:
        raise Unmapped("bad_document", "no eventType: not an ISAPI event notification")
    raise Unmapped("unsupported_event", f"eventType {_text(alert.get('eventType'))[:40]!r} is not mapped")
