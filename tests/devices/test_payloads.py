"""Payload rules of the contract, kind by kind, and how payloads map to storage points (section 5)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from devices import REGISTRY
from devices.base import Accepted, Invalid, Point
from hub.ingest.decode import DecodeError, decode

pytestmark = pytest.mark.unit

PASSAGE = {"type": "passage", "plate": "琼A12345", "plate_color": "blue", "direction": "in", "lane": "1",
           "vehicle_class": "car", "confidence": 0.9, "decision": "allowed", "category": "resident"}
ACCESS = {"type": "access", "method": "face", "subject": "p-7f3a", "result": "granted"}
DETECTION = {"type": "detection", "label": "smoke", "phase": "start", "score": 0.7}
START = {"type": "session_start", "session": "S-42", "connector": 1, "id_tag": "tag-88a1", "meter_start_kwh": 10.5}
STOP = {"type": "session_stop", "session": "S-42", "energy_kwh": 18.2, "duration_s": 9840, "reason": "remote"}


def without(payload: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != name}


def validate(kind: str, channel: str, payload: Any) -> Any:
    return REGISTRY[kind].validate(channel, orjson.dumps(payload))


def points(kind: str, channel: str, payload: dict[str, Any], tags: dict[str, str] | None = None) -> list[Point]:
    msg = Accepted("s1", kind, "d1", channel, validate(kind, channel, payload), 2_000, 1_000, 1_000, tags or {})
    return REGISTRY[kind].to_points(msg)


def command(kind: str, op: str, args: dict[str, Any]) -> BaseModel:
    return REGISTRY[kind].commands[op].model_validate(args)


@pytest.mark.parametrize(
    ("kind", "channel", "payload"),
    [
        ("gate", "event", PASSAGE | {"plate_color": "purple"}),
        ("gate", "event", without(PASSAGE, "lane")),
        ("gate", "event", without(PASSAGE, "plate")),
        ("gate", "event", PASSAGE | {"plate": ""}),
        ("gate", "event", PASSAGE | {"confidence": 1.2}),
        ("gate", "event", PASSAGE | {"confidence": 97}),  # a percentage is not 0..1
        ("gate", "event", {"type": "barrier", "state": "half_open"}),
        ("gate", "telemetry", {"cycles": -1}),
        ("access", "event", ACCESS | {"result": "maybe"}),
        ("access", "event", without(ACCESS, "subject")),
        ("access", "event", ACCESS | {"reason": "forgot_card"}),
        ("access", "telemetry", {"door": "ajar"}),
        ("camera", "event", DETECTION | {"label": "ufo"}),
        ("camera", "event", DETECTION | {"score": -0.1}),
        ("camera", "event", without(DETECTION, "phase")),
        ("charger", "telemetry", {"status": "Charging"}),  # OCPP spelling, not the contract's snake case
        ("charger", "telemetry", {"power_kw": -1}),
        ("charger", "event", without(START, "id_tag")),
        ("charger", "event", STOP | {"energy_kwh": -0.1}),
        ("elevator", "telemetry", {"floor": 2.5}),
        ("elevator", "telemetry", {"floor": 1, "ts": "2026-11-22 08:00:00"}),  # no offset
        ("elevator", "telemetry", {"floor": 1, "ts": "2026-11-22T08:00:00"}),  # no offset
        ("elevator", "telemetry", {"floor": 1, "ts": True}),  # a bool is not epoch ms
        ("elevator", "telemetry", {"floor": 1, "seq": -1}),
        ("elevator", "event", {"type": "fault", "code": "sleepy", "active": True}),
        ("access", "event", {"type": "fault", "code": "barrier_stuck", "active": True}),  # a gate's code
        ("elevator", "event", {"type": "fault", "code": "overspeed"}),  # active is required
        ("gate", "event", {"type": "parade"}),
        ("camera", "event", {"label": "smoke", "phase": "start", "score": 0.7}),  # type is required on events
        ("access", "state", {"fw": "1.0"}),  # online is required
        ("access", "reply", {"ok": True}),  # id is required
    ],
)
def test_contract_violations_are_refused(kind: str, channel: str, payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        validate(kind, channel, payload)


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_empty_telemetry_is_refused(kind: str) -> None:
    with pytest.raises(Invalid, match="no field"):
        validate(kind, "telemetry", {"ts": 1_790_000_000_000, "seq": 1})


def test_cmd_is_not_an_inbound_channel() -> None:
    with pytest.raises(Invalid, match="channel"):
        validate("gate", "cmd", {"id": "c-1", "op": "open"})


def test_ts_forms() -> None:
    assert validate("elevator", "telemetry", {"floor": 1, "ts": 1_790_000_000_000}).ts == 1_790_000_000_000
    aware = validate("elevator", "telemetry", {"floor": 1, "ts": "2026-11-22T08:00:00+08:00"}).ts
    assert aware.utcoffset().total_seconds() == 8 * 3600
    assert validate("gate", "event", PASSAGE | {"ts": "2026-11-22T00:00:00Z"}).ts.utcoffset().total_seconds() == 0
    assert validate("camera", "event", DETECTION | {"ts": 1_790_000_000_000}).ts == 1_790_000_000_000


def test_plates_and_optional_fields() -> None:
    assert validate("gate", "event", PASSAGE | {"plate": "粤BD12345", "plate_color": "green"}).plate == "粤BD12345"
    assert validate("gate", "event", PASSAGE | {"plate_color": "unknown"}).image is None
    assert validate("access", "event", ACCESS).reason is None
    assert validate("camera", "event", DETECTION).zone is None


def test_untyped_ids_take_numbers_as_text() -> None:
    """Lanes, tracks, sessions (OCPP's transactionId) and card ids often come as numbers: one stored type."""
    assert validate("gate", "event", PASSAGE | {"lane": 2}).lane == "2"
    assert validate("camera", "event", DETECTION | {"track": 4417}).track == "4417"
    assert validate("charger", "event", START | {"session": 9317}).session == "9317"
    assert validate("access", "event", ACCESS | {"subject": 3141592653}).subject == "3141592653"
    with pytest.raises(ValidationError):
        validate("gate", "event", PASSAGE | {"plate": 12345})  # a plate is a string


def test_charger_connector_defaults_to_1() -> None:
    assert validate("charger", "telemetry", {"power_kw": 7}).connector == 1
    assert validate("charger", "telemetry", {"connector": 2, "power_kw": 7}).connector == 2


def test_command_args() -> None:
    assert command("access", "unlock", {}).seconds == 5
    assert command("access", "unlock", {"seconds": 300}).seconds == 300
    assert command("charger", "set_limit", {"limit_kw": 3.5}).limit_kw == 3.5
    assert command("charger", "stop_session", {}).session is None
    assert command("gate", "open", {}) == command("gate", "close", {})
    for kind, op, args in [
        ("access", "unlock", {"seconds": 0}),
        ("access", "unlock", {"seconds": 301}),
        ("access", "unlock", {"seconds": 5, "door": 2}),  # unknown arguments are refused, not ignored
        ("charger", "set_limit", {}),
        ("charger", "set_limit", {"limit_kw": -1}),
        ("charger", "set_limit", {"limit_kw": float("inf")}),  # what JSON's 1e400 parses to
        ("charger", "set_limit", {"limit_kw": float("nan")}),
        ("charger", "set_limit", {"limit_kw": "Infinity"}),
        ("gate", "open", {"seconds": 5}),
    ]:
        with pytest.raises(ValidationError):
            command(kind, op, args)


def test_extra_device_fields_are_kept() -> None:
    payload = validate("gate", "event", PASSAGE | {"speed_kmh": 12, "color": "white"})
    assert payload.model_extra == {"speed_kmh": 12, "color": "white"}


def test_telemetry_point_has_registry_tags_and_typed_fields() -> None:
    [p] = points("elevator", "telemetry", {"floor": 3, "speed_mps": 2, "running": True, "seq": 5},
                 {"building": "7"})
    assert p == Point("elevator", {"site": "s1", "device": "d1", "building": "7"},
                      {"floor": 3, "speed_mps": 2.0, "running": True, "seq": 5, "lag_ms": 1_000}, 1_000)
    assert type(p.fields["speed_mps"]) is float


def test_device_added_fields_are_kept_storage_safe() -> None:
    [p] = points("charger", "telemetry", {"power_kw": 7, "vendor_code": 3, "phases": [1, 2], "firmware": "v2",
                                          "site": "x", "time": "12:00"})
    assert p.fields["vendor_code"] == 3.0 and type(p.fields["vendor_code"]) is float  # never an int/float conflict
    assert p.fields["phases"] == "[1,2]" and p.fields["firmware"] == "v2"
    assert p.fields["site_value"] == "x" and p.tags["site"] == "s1"  # a field may not take a tag's name
    assert p.fields["time_value"] == "12:00" and "time" not in p.fields  # InfluxDB refuses a field named time
    assert p.fields["connector"] == 1  # the contract's default


@pytest.mark.parametrize(
    ("kind", "payload", "personal"),
    [
        ("gate", PASSAGE | {"image": "http://gate/snap/1.jpg"}, {"plate": "琼A12345", "image": "http://gate/snap/1.jpg"}),
        ("access", ACCESS, {"subject": "p-7f3a"}),
        ("charger", START, {"session": "S-42", "id_tag": "tag-88a1"}),
        ("charger", STOP, {"session": "S-42"}),
    ],
)
def test_event_points_keep_plates_subjects_sessions_and_ids_in_fields(
    kind: str, payload: dict[str, Any], personal: dict[str, str]
) -> None:
    [p] = points(kind, "event", payload | {"id": "e-9", "seq": 4})
    assert p.measurement == f"{kind}_event" and p.time_ms == 1_000
    assert p.tags == {"site": "s1", "device": "d1", "type": payload["type"]}
    assert personal.items() <= p.fields.items()
    assert p.fields["id"] == "e-9" and p.fields["seq"] == 4 and p.fields["lag_ms"] == 1_000
    assert "type" not in p.fields


def test_fault_and_detection_tags() -> None:
    [fault] = points("elevator", "event", {"type": "fault", "code": "trapped_passenger", "active": True,
                                           "detail": "between_floors"})
    assert fault.measurement == "elevator_event"
    assert fault.tags == {"site": "s1", "device": "d1", "type": "fault", "code": "trapped_passenger"}
    assert fault.fields == {"active": True, "detail": "between_floors", "lag_ms": 1_000}
    [seen] = points("camera", "event", DETECTION | {"id": "d-1", "track": 7})
    assert seen.tags == {"site": "s1", "device": "d1", "type": "detection", "label": "smoke"}
    assert seen.fields == {"phase": "start", "score": 0.7, "track": "7", "id": "d-1", "lag_ms": 1_000}


def test_state_and_reply_points() -> None:
    [state] = points("access", "state", {"online": False, "fw": "3.2"})
    assert state == Point("device_state", {"site": "s1", "kind": "access", "device": "d1"},
                          {"online": False, "fw": "3.2", "lag_ms": 1_000}, 1_000)
    [reply] = points("gate", "reply", {"id": "c-1", "ok": False, "error": "jammed"})
    assert reply.measurement == "gate_event" and reply.tags["type"] == "reply"
    assert reply.fields == {"id": "c-1", "ok": False, "error": "jammed", "lag_ms": 1_000}


@pytest.mark.parametrize(
    ("kind", "channel", "raw"),
    [
        ("charger", "telemetry", b'{"power_kw": NaN}'),
        ("charger", "telemetry", b'{"power_kw": Infinity}'),
        ("charger", "telemetry", b'{"temperature_c": -Infinity}'),
        ("charger", "telemetry", b'{"temperature_c": 1e400}'),  # overflows to an infinity
        ("charger", "telemetry", b'{"power_kw": "NaN"}'),  # a string a float field would coerce
        ("charger", "telemetry", b'{"power_kw": 1, "vendor_reading": Infinity}'),  # a device-added field
        ("charger", "telemetry", b'{"power_kw": 1, "phases": [230.1, NaN]}'),  # nested in a device-added list
        ("charger", "telemetry", b'{"power_kw": 1, "meter": {"a": {"b": -Infinity}}}'),
        ("camera", "event", b'{"type": "detection", "label": "smoke", "phase": "start", "score": NaN}'),
        ("camera", "event", b'{"type": "fault", "code": "tamper", "active": true, "angle": Infinity}'),
        ("gate", "state", b'{"online": true, "uptime": Infinity}'),
        ("gate", "reply", b'{"id": "c-1", "ok": true, "took": NaN}'),
    ],
)
def test_nan_and_infinity_are_invalid_also_in_device_added_fields(kind: str, channel: str, raw: bytes) -> None:
    """pydantic's JSON parser reads NaN, Infinity and 1e400 as floats; none is JSON, and the store drops them."""
    with pytest.raises(DecodeError) as caught:
        decode(REGISTRY[kind], channel, raw)
    assert caught.value.reason == "invalid"
    assert "finite" in caught.value.detail


def test_finite_device_added_numbers_are_still_kept() -> None:
    payload = REGISTRY["charger"].validate("telemetry", b'{"power_kw": 1, "phases": [230.1, 1e308], "m": {"a": -2}}')
    assert payload.model_extra == {"phases": [230.1, 1e308], "m": {"a": -2}}


@pytest.mark.parametrize("link", ["javascript:alert(document.cookie)", "JavaScript:alert(1)", "data:text/html,<b>x",
                                  "\x01javascript:alert(1)", " http://nvr/x", "//evil.example/x", "ftp://nvr/x",
                                  "http://", "http://nvr/a b", "http://" + "x" * 2048])
@pytest.mark.parametrize(("kind", "payload", "field"), [
    ("camera", DETECTION, "snapshot"), ("camera", DETECTION, "clip"), ("gate", PASSAGE, "image")])
def test_links_from_devices_are_http_or_https_only(kind: str, payload: dict[str, Any], field: str, link: str) -> None:
    """Screens make these clickable: a javascript: or data: link would run what the sender chose."""
    with pytest.raises(DecodeError) as caught:
        decode(REGISTRY[kind], "event", orjson.dumps(payload | {field: link}))
    assert caught.value.reason == "invalid" and field in caught.value.detail


def test_http_and_https_links_are_kept() -> None:
    for link in ("http://nvr/snap/d-1.jpg", "https://cdn.example/clip.mp4?t=3#x", "HTTPS://NVR/X"):
        assert validate("camera", "event", DETECTION | {"snapshot": link, "clip": link}).snapshot == link
        assert validate("gate", "event", PASSAGE | {"image": link}).image == link
