"""Payload rules of the contract, kind by kind, and how payloads map to storage points."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from devices import REGISTRY
from devices.base import Accepted, Invalid, Point

PASSAGE = {"type": "passage", "plate": "琼A12345", "plate_color": "blue", "direction": "in", "lane": "1",
           "vehicle_class": "car", "confidence": 0.9, "decision": "allowed", "category": "resident"}


def validate(kind: str, channel: str, payload: Any) -> Any:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return REGISTRY[kind].validate(channel, raw)


def points(kind: str, channel: str, payload: dict[str, Any], tags: dict[str, str] | None = None) -> list[Point]:
    msg = Accepted("s1", kind, "d1", channel, validate(kind, channel, payload), 2_000, 1_000, 1_000, tags or {})
    return REGISTRY[kind].to_points(msg)


@pytest.mark.parametrize(
    ("kind", "channel", "payload"),
    [
        ("gate", "event", PASSAGE | {"plate_color": "purple"}),
        ("gate", "event", {k: v for k, v in PASSAGE.items() if k != "lane"}),
        ("gate", "event", PASSAGE | {"confidence": 1.2}),
        ("access", "event", {"type": "access", "method": "face", "subject": "p1", "result": "maybe"}),
        ("camera", "event", {"type": "detection", "label": "ufo", "phase": "start", "score": 0.5}),
        ("camera", "event", {"type": "detection", "label": "smoke", "phase": "start", "score": -0.1}),
        ("charger", "telemetry", {"status": "Charging"}),  # OCPP spelling, not the contract's snake case
        ("elevator", "telemetry", {"floor": 2.5}),
        ("elevator", "telemetry", {"floor": 1, "ts": "2026-11-22 08:00:00"}),  # no offset
        ("elevator", "telemetry", {"floor": 1, "ts": True}),  # a bool is not epoch ms
        ("elevator", "telemetry", {"floor": 1, "seq": -1}),
        ("elevator", "event", {"type": "fault", "code": "sleepy", "active": True}),
        ("elevator", "event", {"type": "fault", "code": "overspeed"}),  # active is required
        ("gate", "event", {"type": "parade"}),
        ("access", "state", {"fw": "1.0"}),  # online is required
        ("access", "reply", {"ok": True}),  # id is required
    ],
)
def test_contract_violations_are_refused(kind: str, channel: str, payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        validate(kind, channel, payload)


def test_empty_telemetry_is_refused() -> None:
    with pytest.raises(Invalid, match="no field"):
        validate("elevator", "telemetry", {"ts": 1_790_000_000_000, "seq": 1})


def test_ts_forms() -> None:
    assert validate("elevator", "telemetry", {"floor": 1, "ts": 1_790_000_000_000}).ts == 1_790_000_000_000
    aware = validate("elevator", "telemetry", {"floor": 1, "ts": "2026-11-22T08:00:00+08:00"}).ts
    assert aware.utcoffset().total_seconds() == 8 * 3600


def test_green_plates_and_unknown_colours_are_valid() -> None:
    assert validate("gate", "event", PASSAGE | {"plate": "粤BD12345", "plate_color": "green"}).plate == "粤BD12345"
    assert validate("gate", "event", PASSAGE | {"plate_color": "unknown"}).plate_color == "unknown"


def test_telemetry_point_has_registry_tags_and_typed_fields() -> None:
    [p] = points("elevator", "telemetry", {"floor": 3, "speed_mps": 2, "running": True, "seq": 5},
                 {"building": "7"})
    assert p == Point("elevator", {"site": "s1", "device": "d1", "building": "7"},
                      {"floor": 3, "speed_mps": 2.0, "running": True, "seq": 5, "lag_ms": 1_000}, 1_000)
    assert type(p.fields["speed_mps"]) is float


def test_device_added_fields_are_kept_storage_safe() -> None:
    [p] = points("charger", "telemetry", {"power_kw": 7, "vendor_code": 3, "phases": [1, 2], "site": "x"})
    assert p.fields["vendor_code"] == 3.0 and type(p.fields["vendor_code"]) is float  # never an int/float conflict
    assert p.fields["phases"] == "[1,2]"
    assert p.fields["site_value"] == "x" and p.tags["site"] == "s1"  # a field may not take a tag's name
    assert p.fields["connector"] == 1  # the contract's default


def test_event_points_keep_personal_data_and_ids_in_fields() -> None:
    [p] = points("gate", "event", PASSAGE | {"id": "p-9", "seq": 4})
    assert p.measurement == "gate_event"
    assert p.tags == {"site": "s1", "device": "d1", "type": "passage"}
    assert p.fields["plate"] == "琼A12345" and p.fields["id"] == "p-9" and p.fields["seq"] == 4


def test_fault_and_detection_tags() -> None:
    [fault] = points("elevator", "event", {"type": "fault", "code": "trapped_passenger", "active": True,
                                           "detail": "between_floors"})
    assert fault.tags == {"site": "s1", "device": "d1", "type": "fault", "code": "trapped_passenger"}
    assert fault.fields == {"active": True, "detail": "between_floors", "lag_ms": 1_000}
    [seen] = points("camera", "event", {"type": "detection", "label": "smoke", "phase": "start", "score": 0.7})
    assert seen.tags["label"] == "smoke" and "label" not in seen.fields


def test_state_and_reply_points() -> None:
    [state] = points("access", "state", {"online": False, "fw": "3.2"})
    assert state == Point("device_state", {"site": "s1", "kind": "access", "device": "d1"},
                          {"online": False, "fw": "3.2", "lag_ms": 1_000}, 1_000)
    [reply] = points("gate", "reply", {"id": "c-1", "ok": False, "error": "jammed"})
    assert reply.measurement == "gate_event" and reply.tags["type"] == "reply"
    assert reply.fields == {"id": "c-1", "ok": False, "error": "jammed", "lag_ms": 1_000}
