"""adapters/frigate/mapping.py: Frigate's MQTT payloads (fixtures after docs.frigate.video/integrations/mqtt,
see fixtures/README.md) -> camera messages.

Every mapped message is also decoded by the camera kind's own models, so a mapping the hub would refuse fails here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.frigate import mapping
from adapters.frigate.mapping import Camera, Memory, Message, Unmapped
from devices import REGISTRY
from hub.ingest.decode import decode
from hub.registry import ZoneRule

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures"
CAMERA = REGISTRY["camera"]
API = "http://frigate.local:5000"
NOW_MS = 1_764_614_402_000
CAMERAS = {
    "lane_north": Camera("sunshine", "cam-lane-n", {"fire_lane": ZoneRule(label="fire_lane_blocked",
                                                                            objects=["person", "car"], dwell_s=30)}),
    "b3_facade": Camera("sunshine", "cam-b3-facade", {"facade": ZoneRule(label="high_altitude_throw")}),
    "lift_b3": Camera("sunshine", "cam-b3-lift1", {"car": ZoneRule(label="ebike_in_elevator",
                                                                    objects=["bicycle", "motorcycle"])}),
}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def edited(name: str, **after: Any) -> bytes:
    data = json.loads(fixture(name))
    data["after"].update(after)
    return orjson.dumps(data)


def messages(results: list[Message | Unmapped]) -> list[Message]:
    """The results, all of them messages the camera kind accepts."""
    assert all(isinstance(r, Message) for r in results), results
    for m in results:
        decode(CAMERA, m.channel, orjson.dumps(m.payload))  # type: ignore[union-attr]
    return results  # type: ignore[return-value]


def test_new_update_end_are_one_detection_through_its_phases() -> None:
    memory = Memory()
    runs = [messages(mapping.event(fixture(f), CAMERAS, memory, API, NOW_MS))
            for f in ("event_new.json", "event_update.json", "event_end.json")]
    base = [[m.payload for m in run if m.payload["label"] == "person"][0] for run in runs]
    assert [p["phase"] for p in base] == ["start", "update", "end"]
    assert {p["id"] for p in base} == {"1764614400.123456-ab12cd"}
    assert base[0]["score"] == 0.82 and base[1]["score"] == 0.91  # top_score, not the frame's score
    assert base[0]["zone"] == "fire_lane" and "zone" not in base[2]  # it left the zone before it ended
    assert base[0]["ts"] == 1_764_614_401_500 and base[2]["ts"] == 1_764_614_470_000
    assert base[0]["snapshot"] == f"{API}/api/events/1764614400.123456-ab12cd/snapshot.jpg"
    assert "clip" not in base[0] and base[1]["clip"] == f"{API}/api/events/1764614400.123456-ab12cd/clip.mp4"
    assert all((m.site, m.device, m.channel) == ("sunshine", "cam-lane-n", "event") for run in runs for m in run)
    assert not memory.open  # the end forgets the object


def test_a_person_in_the_fire_lane_for_long_is_fire_lane_blocked_from_then_on() -> None:
    memory = Memory()
    first = messages(mapping.event(fixture("event_new.json"), CAMERAS, memory, API, NOW_MS))
    assert [m.payload["label"] for m in first] == ["person"]  # 0 s in the lane: not yet
    later = messages(mapping.event(fixture("event_update.json"), CAMERAS, memory, API, NOW_MS))  # 38.5 s later
    blocked = [m.payload for m in later if m.payload["label"] == "fire_lane_blocked"]
    assert blocked == [{**blocked[0], "id": "1764614400.123456-ab12cd:fire_lane_blocked", "phase": "start",
                        "zone": "fire_lane"}]
    end = messages(mapping.event(fixture("event_end.json"), CAMERAS, memory, API, NOW_MS))
    assert [(m.payload["label"], m.payload["phase"]) for m in end] == [("person", "end"), ("fire_lane_blocked", "end")]


def test_leaving_the_zone_starts_the_dwell_again() -> None:
    memory = Memory()
    mapping.event(fixture("event_new.json"), CAMERAS, memory, API, NOW_MS)
    mapping.event(edited("event_update.json", current_zones=[], frame_time=1764614420.0), CAMERAS, memory, API, NOW_MS)
    back = mapping.event(edited("event_update.json", frame_time=1764614440.0), CAMERAS, memory, API, NOW_MS)
    assert [m.payload["label"] for m in messages(back)] == ["person"]  # 20 s since it came back, not 38


def test_any_object_through_a_facade_zone_is_a_high_altitude_throw() -> None:
    out = messages(mapping.event(fixture("event_throw_new.json"), CAMERAS, Memory(), API, NOW_MS))
    # a suitcase has no contract label of its own: only the zone rule speaks
    assert [(m.payload["label"], m.payload["phase"], m.payload["zone"]) for m in out] == [
        ("high_altitude_throw", "start", "facade")]
    assert out[0].payload["clip"].endswith("/api/events/1764614500.5-zz99yy/clip.mp4")


def test_a_throw_carries_its_start_height_and_the_recording_around_it() -> None:
    """The evidence a floor band and the police need: the top of the track's first box (Frigate's `box` is
    [x_min, y_min, x_max, y_max] in detect pixels), kept while the object falls, and the recording from 10 s
    before the object was first seen to 20 s after (Frigate's /api/<camera>/start/<ts>/end/<ts>/clip.mp4)."""
    memory = Memory()
    [start] = messages(mapping.event(fixture("event_throw_new.json"), CAMERAS, memory, API, NOW_MS))
    assert start.payload["start_top_px"] == 496.0
    assert start.payload["pre_clip"] == f"{API}/api/b3_facade/start/1764614490.500/end/1764614500.500/clip.mp4"
    assert start.payload["post_clip"] == f"{API}/api/b3_facade/start/1764614500.500/end/1764614520.500/clip.mp4"
    falling = json.loads(fixture("event_throw_new.json"))
    falling["type"] = "update"
    falling["before"] = falling["after"]
    falling["after"] = {**falling["after"], "box": [440, 700, 540, 760], "frame_time": 1764614501.6}
    [update] = messages(mapping.event(orjson.dumps(falling), CAMERAS, memory, API, NOW_MS))
    assert update.payload["phase"] == "update" and update.payload["start_top_px"] == 496.0  # where it started


@pytest.mark.parametrize("box", [None, [1, 2, 3], ["a", "b", "c", "d"], [0, float("inf"), 1, 2], [0, -4, 1, 2], True])
def test_a_box_frigate_did_not_send_well_gives_no_start_height(box: Any) -> None:
    data = json.loads(fixture("event_throw_new.json"))
    data["before"]["box"] = data["after"]["box"] = box
    [start] = messages(mapping.event(orjson.dumps(data), CAMERAS, Memory(), API, NOW_MS))
    assert "start_top_px" not in start.payload and start.payload["pre_clip"]


@pytest.mark.parametrize(("label", "expected"), [("bicycle", ["vehicle", "ebike_in_elevator"]),
                                                 ("motorcycle", ["vehicle", "ebike_in_elevator"]),
                                                 ("person", ["person"])])
def test_a_two_wheeler_in_an_elevator_zone_is_ebike_in_elevator(label: str, expected: list[str]) -> None:
    payload = edited("event_new.json", camera="lift_b3", label=label, current_zones=["car"], entered_zones=["car"])
    assert [m.payload["label"] for m in messages(mapping.event(payload, CAMERAS, Memory(), API, NOW_MS))] == expected


def test_the_review_severity_goes_on_the_detection_and_an_open_one_says_so_at_once() -> None:
    memory = Memory()
    mapping.event(fixture("event_new.json"), CAMERAS, memory, API, NOW_MS)
    now = messages(mapping.review(fixture("review_alert.json"), CAMERAS, memory, NOW_MS + 1))
    assert [(m.payload["phase"], m.payload["review"], m.payload["ts"]) for m in now] == [
        ("update", "alert", NOW_MS + 1)]
    assert mapping.review(fixture("review_alert.json"), CAMERAS, memory, NOW_MS + 2) == []  # unchanged: nothing new
    update = messages(mapping.event(fixture("event_update.json"), CAMERAS, memory, API, NOW_MS))
    assert {m.payload["review"] for m in update} == {"alert"}


def test_false_positives_are_dropped() -> None:
    assert mapping.event(edited("event_new.json", false_positive=True), CAMERAS, Memory(), API, NOW_MS) == []


def test_no_api_url_no_links_and_hostile_ids_are_quoted() -> None:
    out = messages(mapping.event(fixture("event_new.json"), CAMERAS, Memory(), None, NOW_MS))
    assert "snapshot" not in out[0].payload
    odd = mapping.event(edited("event_new.json", id="a/../b c?x"), CAMERAS, Memory(), API, NOW_MS)
    assert messages(odd)[0].payload["snapshot"] == f"{API}/api/events/a%2F..%2Fb%20c%3Fx/snapshot.jpg"


def test_available_takes_every_mapped_camera_offline_and_back() -> None:
    off = messages(mapping.available(b"offline", CAMERAS))
    assert {(m.device, m.channel, m.payload["online"]) for m in off} == {
        ("cam-lane-n", "state", False), ("cam-b3-facade", "state", False), ("cam-b3-lift1", "state", False)}
    assert {m.payload["online"] for m in messages(mapping.available(b"online", CAMERAS))} == {True}


def test_the_detect_stream_status_is_video_loss_and_disabled_is_offline() -> None:
    down = messages(mapping.status("lane_north", "detect", b"offline", CAMERAS, NOW_MS))
    assert [(m.channel, m.payload.get("code"), m.payload.get("active")) for m in down] == [
        ("state", None, None), ("event", "video_loss", True)]
    up = messages(mapping.status("lane_north", "detect", b"online", CAMERAS, NOW_MS + 5))
    assert up[1].payload["active"] is False
    assert messages(mapping.status("lane_north", "detect", b"disabled", CAMERAS, NOW_MS))[0].payload == {
        "online": False}
    assert mapping.status("lane_north", "record", b"offline", CAMERAS, NOW_MS) == []


def test_routes() -> None:
    assert mapping.route("frigate/events", "frigate") == ("events",)
    assert mapping.route("frigate/lane_north/status/detect", "frigate") == ("status", "lane_north", "detect")
    assert mapping.route("frigate/lane_north/person", "frigate") is None
    assert mapping.route("other/events", "frigate") is None


@pytest.mark.parametrize("payload", [
    b"", b"not json", b"[]", b"null", b'{"type": "new"}', b'{"type": "begin", "after": {}}',
    b'{"type": "new", "after": []}', b'{"type": "new", "after": {"camera": "lane_north", "label": "person"}}',
    b"{" * 100_000, b'{"type": "new", "after": {"id": "' + b"x" * 200 + b'", "camera": "lane_north"}}',
    b" " * (mapping.MAX_PAYLOAD_BYTES + 1),
])
def test_malformed_events_are_unmapped(payload: bytes) -> None:
    out = mapping.event(payload, CAMERAS, Memory(), API, NOW_MS)
    assert len(out) == 1 and isinstance(out[0], Unmapped) and out[0].reason == "frigate_malformed"


@pytest.mark.parametrize("score", [1.5, -0.1, "0.9", None, True, 1e400])
def test_scores_out_of_range_or_not_numbers_are_unmapped(score: Any) -> None:
    payload = edited("event_new.json", top_score=score, score=score)
    out = mapping.event(payload.replace(b"Infinity", b"1e400"), CAMERAS, Memory(), API, NOW_MS)
    assert isinstance(out[0], Unmapped)


def test_nan_and_odd_times_never_reach_the_contract() -> None:
    out = mapping.event(edited("event_new.json", frame_time="soon"), CAMERAS, Memory(), API, NOW_MS)
    assert messages(out)[0].payload["ts"] == NOW_MS  # the receive time instead
    assert isinstance(mapping.event(fixture("event_new.json").replace(b"0.82,", b"NaN,", 1), CAMERAS, Memory(),
                                    API, NOW_MS)[0], Unmapped)


def test_unknown_cameras_are_unmapped_everywhere() -> None:
    stranger = edited("event_new.json", camera="garage")
    assert mapping.event(stranger, CAMERAS, Memory(), API, NOW_MS)[0].reason == "frigate_unknown_camera"  # type: ignore[union-attr]
    review = json.loads(fixture("review_alert.json"))
    review["after"]["camera"] = "garage"
    assert mapping.review(orjson.dumps(review), CAMERAS, Memory(), NOW_MS)[0].reason == "frigate_unknown_camera"  # type: ignore[union-attr]
    assert mapping.status("garage", "detect", b"online", CAMERAS, NOW_MS)[0].reason == "frigate_unknown_camera"  # type: ignore[union-attr]


@pytest.mark.parametrize("payload", [b"maybe", b"\xff\xfe", b"ONLINE!"])
def test_malformed_availability_is_unmapped(payload: bytes) -> None:
    assert isinstance(mapping.available(payload, CAMERAS)[0], Unmapped)


def test_hostile_zones_and_reviews_are_bounded() -> None:
    memory = Memory()
    zones = ["z" * 500, 7, None, "fire_lane"]
    out = messages(mapping.event(edited("event_new.json", current_zones=zones, entered_zones=zones), CAMERAS, memory,
                                 API, NOW_MS))
    assert out[0].payload["zone"] == "fire_lane"
    review = json.loads(fixture("review_alert.json"))
    review["after"]["data"]["detections"] = [f"id-{i}" for i in range(mapping.OPEN_KEPT + 50)] + [5, "x" * 999]
    assert mapping.review(orjson.dumps(review), CAMERAS, memory, NOW_MS) == []
    assert len(memory.review) <= mapping.OPEN_KEPT
    bad = dict(review, after=dict(review["after"], severity="critical"))
    assert isinstance(mapping.review(orjson.dumps(bad), CAMERAS, memory, NOW_MS)[0], Unmapped)
