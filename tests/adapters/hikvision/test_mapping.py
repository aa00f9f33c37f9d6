"""The ISAPI documents Hikvision publishes, mapped to the contract; and what the hub refuses to map."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.hikvision import body, mapping
from adapters.hikvision.mapping import Unmapped, map_document
from devices import REGISTRY
from hub.ingest.decode import decode

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    raw = (FIXTURES / name).read_bytes()
    return body.parse_body(raw, "application/json" if name.endswith(".json") else "application/xml").document


def valid(kind: str, message: mapping.Message) -> None:
    """The kind's own contract accepts what the adapter made."""
    decode(REGISTRY[kind], message.channel, json.dumps(message.payload).encode())


def test_anpr_alert_is_a_gate_passage() -> None:
    mapped = map_document(fixture("anpr.xml"))
    assert mapped.kind == "gate" and mapped.what == "passage"
    (message,) = mapped.messages
    p = message.payload
    assert message.channel == "event"
    assert (p["plate"], p["plate_color"], p["direction"], p["lane"]) == ("琼A12345", "blue", "in", "1")
    assert (p["vehicle_class"], p["confidence"], p["decision"], p["category"]) == ("car", 0.93, "allowed", "resident")
    assert p["ts"] == 1_795_305_483_000  # 2026-11-22T07:58:03+08:00
    assert "replayed" not in p
    valid("gate", message)


def test_a_history_replay_has_the_same_event_id() -> None:
    live = map_document(fixture("anpr.xml")).messages[0].payload
    replay = map_document(fixture("anpr_history.xml")).messages[0].payload
    assert replay["replayed"] is True
    assert (replay["id"], replay["ts"]) == (live["id"], live["ts"])  # the pipeline's dedupe key


def test_no_plate_and_unknown_direction() -> None:
    with pytest.raises(Unmapped) as refused:
        map_document(fixture("anpr_noplate.xml"))
    assert refused.value.reason == "no_direction" and "?direction=" in str(refused.value)
    mapped = map_document(fixture("anpr_noplate.xml"), default_direction="out")
    p = mapped.messages[0].payload
    assert (p["plate"], p["plate_color"], p["direction"], p["vehicle_class"]) == (mapping.NO_PLATE, "unknown", "out",
                                                                                  "truck")
    assert (p["decision"], p["category"], p["lane"]) == ("manual", "unknown", "2")
    valid("gate", mapped.messages[0])


@pytest.mark.parametrize(("raw", "token", "expected"), [
    ("蓝琼A12345", "", ("琼A12345", "blue")),
    ("黄绿粤BD12345", None, ("粤BD12345", "green")),
    ("琼A12345", "YELLOW", ("琼A12345", "yellow")),
    ("绿粤BD12345", "newEnergyGreen", ("粤BD12345", "green")),
    ("黄琼D55321", "blue", ("琼D55321", "blue")),  # the token wins over the word
    ("noPlate", "blue", (mapping.NO_PLATE, "unknown")),
    ("unknown", "", (mapping.NO_PLATE, "unknown")),
    ("无车牌", "", (mapping.NO_PLATE, "unknown")),
    (" 琼 A 12345 ", "purple", ("琼A12345", "unknown")),
])
def test_plate_colour(raw: str, token: str | None, expected: tuple[str, str]) -> None:
    assert mapping.plate_and_colour(raw, token) == expected


@pytest.mark.parametrize(("token", "expected"), [
    ("SUVMPV", "car"), ("suv_mpv", "car"), ("vehicle", "car"), ("Truck", "truck"), ("largeBus", "bus"),
    ("MIDBUS", "bus"), ("twoWheelVehicle", "motorcycle"), ("tricycle", "other"), ("", "other"), (None, "other"),
])
def test_vehicle_class_whatever_the_casing(token: str | None, expected: str) -> None:
    assert mapping.vehicle_class(token) == expected


@pytest.mark.parametrize(("level", "expected"), [("93", 0.93), (100, 1.0), ("140", 1.0), ("-5", 0.0), (None, 0.0)])
def test_confidence_scaled(level: Any, expected: float) -> None:
    assert mapping.confidence(level) == expected


@pytest.mark.parametrize("level", ["high", "NaN", "inf", True, [1], {"a": 1}])
def test_confidence_of_the_wrong_type_is_refused(level: Any) -> None:
    with pytest.raises(Unmapped):
        mapping.confidence(level)


def test_face_granted() -> None:
    mapped = map_document(fixture("acs_face_granted.json"))
    (message,) = mapped.messages
    p = message.payload
    assert mapped.kind == "access" and mapped.what == "access"
    assert (p["type"], p["method"], p["subject"], p["result"], p["id"]) == ("access", "face", "p-7f3a", "granted",
                                                                            "hik-acs-5310")
    assert "Zhang San" not in json.dumps(p)  # the name never leaves the adapter
    valid("access", message)


def test_card_denied_as_expired() -> None:
    (message,) = map_document(fixture("acs_card_expired.json")).messages
    p = message.payload
    assert (p["method"], p["subject"], p["result"], p["reason"]) == ("card", "3141592653", "denied", "expired")
    valid("access", message)


@pytest.mark.parametrize(("name", "code", "active"), [("acs_door_forced.json", "door_forced", True),
                                                       ("acs_tamper.json", "tamper", True)])
def test_faults(name: str, code: str, active: bool) -> None:
    mapped = map_document(fixture(name))
    (message,) = mapped.messages
    assert mapped.what == "fault"
    assert (message.payload["code"], message.payload["active"]) == (code, active)
    valid("access", message)


@pytest.mark.parametrize(("major", "minor", "code", "active"), [
    (5, 0x1C, "door_held_open", True), (5, 0x85, "tailgating", True), (5, 0x87, "door_forced", True),
    (1, 0x405, "tamper", False), (1, 0x406, "tamper", True), (1, 0x407, "tamper", False),
])
def test_fault_codes(major: int, minor: int, code: str, active: bool) -> None:
    alert = {"eventType": "AccessControllerEvent", "dateTime": "2026-11-22T23:10:44+08:00",
             "AccessControllerEvent": {"majorEventType": major, "subEventType": minor, "serialNo": 9}}
    (message,) = map_document(alert).messages
    assert (message.payload["code"], message.payload["active"]) == (code, active)
    assert code in REGISTRY["access"].faults


def test_xml_codes_as_text_and_hex() -> None:
    alert = {"EventNotificationAlert": {"eventType": "AccessControllerEvent", "AccessControllerEvent": {
        "majorEventType": "0x5", "subEventType": "1", "serialNo": "77", "cardNo": "c-0091"}}}
    (message,) = map_document(alert).messages
    assert (message.payload["method"], message.payload["subject"], message.payload["id"]) == ("card", "c-0091",
                                                                                              "hik-acs-77")


@pytest.mark.parametrize(("text", "expected"), [("075", 75), ("0x4B", 75), (" 75 ", 75), (75.0, 75)])
def test_codes_as_devices_write_them(text: Any, expected: int) -> None:
    assert mapping._int(text, "subEventType") == expected


def test_door_closed_is_telemetry_and_clears_the_door_faults() -> None:
    alert = {"eventType": "AccessControllerEvent", "AccessControllerEvent": {"majorEventType": 5,
                                                                              "subEventType": 0x1A, "serialNo": 4}}
    messages = map_document(alert).messages
    assert messages[0] == mapping.Message("telemetry", {"door": "closed"})
    assert {(m.payload["code"], m.payload["active"]) for m in messages[1:]} == {("door_forced", False),
                                                                                 ("door_held_open", False)}
    for message in messages:
        valid("access", message)


def test_an_unmapped_code_is_the_device_being_heard() -> None:
    alert = {"eventType": "AccessControllerEvent", "AccessControllerEvent": {"majorEventType": 5,
                                                                              "subEventType": 0x17}}
    mapped = map_document(alert)
    assert mapped.messages == [mapping.online()] and mapped.what == "ignored 5/0x17"


@pytest.mark.parametrize("name", ["heartbeat.json", "videoloss_inactive.xml"])
def test_heartbeats_are_liveness(name: str) -> None:
    mapped = map_document(fixture(name))
    assert (mapped.kind, mapped.messages, mapped.what) == (None, [mapping.online()], "heartbeat")


@pytest.mark.parametrize(("document", "reason"), [
    ({"eventType": "ANPR"}, "bad_document"),
    ({"eventType": "ANPR", "ANPR": "text"}, "bad_document"),
    ({"eventType": "ANPR", "ANPR": {"licensePlate": "琼A12345", "direction": "forward", "confidenceLevel": "x"}},
     "bad_field"),
    ({"eventType": "ANPR", "ANPR": {"licensePlate": "琼A" + "1" * 40, "direction": "forward"}}, "bad_field"),
    ({"eventType": "AccessControllerEvent", "AccessControllerEvent": {"majorEventType": "five",
                                                                      "subEventType": 1}}, "bad_field"),
    ({"eventType": "AccessControllerEvent", "AccessControllerEvent": {"majorEventType": 5,
                                                                      "subEventType": [1]}}, "bad_field"),
    ({"eventType": "AccessControllerEvent", "AccessControllerEvent": {"majorEventType": 5}}, "bad_document"),
    ({"eventType": "AccessControllerEvent", "AccessControllerEvent": [1, 2]}, "bad_document"),
    ({"eventType": "VMD"}, "unsupported_event"),
    ({"hello": "world", "x": 1}, "bad_document"),
    ({"eventType": {"nested": True}}, "bad_document"),
])
def test_what_cannot_be_mapped(document: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unmapped) as refused:
        map_document(document)
    assert refused.value.reason == reason


def test_snapshot_is_linked() -> None:
    mapped = map_document(fixture("anpr.xml"), snapshot="http://hub/push/hikvision/pictures/s/d/x-0.jpg")
    assert mapped.messages[0].payload["image"] == "http://hub/push/hikvision/pictures/s/d/x-0.jpg"
    valid("gate", mapped.messages[0])


@pytest.mark.parametrize("name", ["anpr.xml", "anpr_history.xml", "acs_face_granted.json"])
def test_linking_a_mapped_event_is_mapping_it_with_the_snapshot(name: str) -> None:
    url = "http://hub/push/hikvision/pictures/s/d/x-0.jpg"
    plain = map_document(fixture(name))
    assert mapping.linked(plain, url) == map_document(fixture(name), snapshot=url)
    assert "image" not in plain.messages[0].payload  # the mapped event itself is left as it was
