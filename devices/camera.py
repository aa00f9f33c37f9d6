"""Cameras as event sources (智能摄像头): high-altitude throws (高空抛物), e-bikes in lifts, fire lanes.

One happening keeps one `id` through its `start`, `update` and `end` phases;
`label` is a tag so dashboards can count detections by type. Its media links
(`snapshot`, `clip`, `pre_clip`, `post_clip`) lead to pictures of people and
cars: personal data, as a gate's `image` is (masked below operator, forgotten
after the retention, digested in an incident's hash chain).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import Field

from devices.base import (
    Accepted,
    DeviceKind,
    DevicePayload,
    EventPayload,
    FaultSpec,
    OverviewSection,
    Severity,
    TodayFigure,
    WebLink,
)
from devices.rules import Intent, Raise

Label = Literal[
    "high_altitude_throw", "intrusion", "loitering", "illegal_parking", "fire_lane_blocked", "smoke", "fire",
    "ebike_in_elevator", "crowd", "fall", "person", "vehicle",
]


class Telemetry(DevicePayload):
    """Optional health telemetry: many cameras only ever send events."""

    recording: bool | None = None
    fps: float | None = Field(None, ge=0)


class Detection(EventPayload):
    """One phase of something the camera's analytics saw."""

    type: Literal["detection"]
    label: Label
    phase: Literal["start", "update", "end"]
    score: float = Field(ge=0, le=1)
    zone: str | None = Field(None, min_length=1, max_length=64, coerce_numbers_to_str=True)
    # Trackers number their tracks: kept as text, so the stored field keeps one type.
    track: str | None = Field(None, min_length=1, max_length=128, coerce_numbers_to_str=True)
    snapshot: WebLink | None = Field(None, description="http(s) URL of a still")
    clip: WebLink | None = Field(None, description="http(s) URL of the video")
    pre_clip: WebLink | None = Field(None, description="http(s) URL of the recording just before the happening")
    post_clip: WebLink | None = Field(None, description="http(s) URL of the recording from its start on")
    start_top_px: float | None = Field(None, ge=0, le=100_000, description="Top edge of the track's first box: "
                                       "its pixel row from the top of the analysed frame (a throw's start height)")
    review: Literal["alert", "detection"] | None = Field(
        None, description="The severity an NVR's review gave this happening (Frigate: alert or detection)")


MEDIA = ("snapshot", "clip", "pre_clip", "post_clip")
"""The detection's links: personal (what they show is people and cars)."""

FAULTS = {
    "video_loss": FaultSpec(Severity.MAJOR, "视频丢失", "Video loss"),
    "tamper": FaultSpec(Severity.MAJOR, "遮挡/移位", "Camera tampered"),
    "storage_full": FaultSpec(Severity.MINOR, "存储已满", "Storage full"),
}

DERIVED = {
    "high_altitude_throw": FaultSpec(Severity.CRITICAL, "高空抛物", "Object thrown from height"),
    "fire_detected": FaultSpec(Severity.CRITICAL, "烟火报警", "Smoke or fire detected"),
}
"""Codes only this kind's rules raise."""


def camera_incidents(msg: Accepted, telemetry: Mapping[str, Any], memory: dict[str, Any], now_ms: int,
                     t: Any) -> Iterable[Intent]:
    payload = msg.payload
    if msg.channel != "event" or payload.type != "detection" or payload.phase != "start":  # type: ignore[attr-defined]
        return ()
    where = f" in {payload.zone}" if payload.zone else ""  # type: ignore[attr-defined]
    # No media link in the detail: an alert is kept for years and shown to viewers, a link is personal data.
    detail = f"score {payload.score:.2f}{where}"  # type: ignore[attr-defined]
    if payload.label == "high_altitude_throw":  # type: ignore[attr-defined]
        return (Raise("high_altitude_throw", detail),)
    if payload.label in ("smoke", "fire"):  # type: ignore[attr-defined]
        return (Raise("fire_detected", detail),)
    return ()


KIND = DeviceKind(
    name="camera",
    rules=(camera_incidents,),
    zh="摄像头",
    en="Camera",
    telemetry=Telemetry,
    events=(Detection,),
    faults=FAULTS,
    event_tags={"detection": ("label",)},
    derived=DERIVED,
    work_orders=frozenset({"high_altitude_throw", "fire_detected"}),
    personal=MEDIA,
    # a detection is one id through its phases: its start counts it once
    overview=OverviewSection(None, today={
        "detections_today": TodayFigure("count", "score", {"type": "detection", "phase": "start"})}),
    examples={
        "telemetry": (
            {"recording": True, "fps": 25},
            {"recording": False, "fps": 0, "ts": "2026-11-22T03:10:00+08:00", "seq": 88},
        ),
        "event": (
            {"type": "detection", "id": "d-1", "label": "high_altitude_throw", "phase": "start", "score": 0.93,
             "zone": "b3-facade", "track": 4417, "snapshot": "http://nvr/snap/d-1.jpg"},
            {"type": "detection", "id": "d-1", "label": "high_altitude_throw", "phase": "update", "score": 0.96,
             "zone": "b3-facade", "track": 4417, "seq": 902},
            {"type": "detection", "id": "d-1", "label": "high_altitude_throw", "phase": "end", "score": 0.96,
             "zone": "b3-facade", "track": 4417, "clip": "http://nvr/clip/d-1.mp4", "seq": 903},
            {"type": "detection", "id": "d-2", "label": "ebike_in_elevator", "phase": "start", "score": 0.81,
             "track": "t-55"},
            {"type": "detection", "id": "d-3", "label": "fire_lane_blocked", "phase": "start", "score": 0.77,
             "zone": "lane-north"},
            {"type": "detection", "id": "d-4", "label": "smoke", "phase": "start", "score": 0.62, "zone": "b7-roof"},
            {"type": "fault", "id": "f-1", "code": "video_loss", "active": True},
            {"type": "fault", "id": "f-2", "code": "video_loss", "active": False},
            {"type": "fault", "id": "f-3", "code": "storage_full", "active": True, "detail": "SD card 100%"},
        ),
    },
)
