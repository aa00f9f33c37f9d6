"""Frigate's MQTT messages -> the contract's camera messages, as pure functions.

Frigate (an NVR with object detection) publishes on the hub's broker under its `topic_prefix` (default
`frigate`; https://docs.frigate.video/integrations/mqtt): `events` (a tracked object's `new`/`update`/`end`),
`reviews` (the review item grouping them, with its `severity`), `available` (`online`/`offline`) and
`<camera>/status/<role>` (`online`/`offline`/`disabled` per role). Nothing here does I/O: the registry's view
(`Camera` per Frigate camera name) and what earlier messages left (`Memory`) are passed in, so `intake.py` is
only the edge that feeds the pipeline.

A tracked object is one detection under Frigate's id. A zone rule of the registry that it meets (`person` in a
fire lane for 30 s, anything through a facade zone) starts a second detection, `<id>:<label>`, with the domain
label: the alert rules act on a detection's start, and the fire lane is blocked only from the 30th second on.

Frigate's `sub_label` (a recognised face's name, a known plate) and `recognized_license_plate` are not passed on:
they are personal data, and the camera kind has no field, masking or retention for them yet.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote

import orjson

from devices.camera import Label
from hub.registry import ZoneRule

KIND = "camera"
MAX_PAYLOAD_BYTES = 256 * 1024
"""Frigate's JSON messages are a few KiB; anything far larger is not Frigate's."""
MAX_ID = 100
"""Frigate ids are `<epoch>.<micros>-<6 chars>`; ours add `:<label>` and must stay within the contract's 128."""
MAX_ZONE = 64
OPEN_KEPT = 10_000
"""Tracked objects remembered while they are open (an `end` forgets one; beyond this the oldest go)."""
PHASES = {"new": "start", "update": "update", "end": "end"}
REVIEW_SEVERITIES = ("alert", "detection")
LABELS: Mapping[str, str] = {
    "person": "person", "car": "vehicle", "truck": "vehicle", "bus": "vehicle", "motorcycle": "vehicle",
    "bicycle": "vehicle", "license_plate": "vehicle", "fire": "fire", "smoke": "smoke",
}
"""Frigate's object labels (its COCO-based model) that have a contract label of their own; others only count
through zone rules (an umbrella thrown from a balcony) and are otherwise ignored."""
DOMAIN_LABELS = frozenset(Label.__args__)  # type: ignore[attr-defined]
PRE_S = 10.0
POST_S = 20.0
"""A domain detection links the camera's recording from PRE_S before the object was first seen (who stood at the
window) to POST_S after (the fall and where it landed): Frigate's own event clip is cut to the object's track."""


class Message(NamedTuple):
    """One contract message for a mapped camera."""

    site: str
    device: str
    channel: str
    payload: dict[str, Any]


class Unmapped(NamedTuple):
    """A Frigate message that cannot be mapped: dead-lettered with the payload as Frigate sent it."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Camera:
    """Our device for one Frigate camera name, and the meaning of its zones."""

    site: str
    device: str
    zones: Mapping[str, ZoneRule] = field(default_factory=dict)


@dataclass(slots=True)
class Tracked:
    """What later messages of one tracked object need: its last mapped payload and its zone history."""

    camera: str
    last: dict[str, Any]
    in_zone_since: dict[str, float] = field(default_factory=dict)
    """zone -> when the object was first seen in it without leaving (seconds, Frigate's clock)."""
    derived: set[str] = field(default_factory=set)
    """Ids of the domain detections started for this object."""
    first_top: float | None = None
    """The top edge (pixel row) of the first box Frigate gave this object: where its track started."""


@dataclass(slots=True)
class Memory:
    """State the mapping carries from message to message (owned by the edge, changed here)."""

    open: OrderedDict[str, Tracked] = field(default_factory=OrderedDict)
    review: dict[str, str] = field(default_factory=dict)
    """Frigate event id -> the severity of the review item that holds it."""

    def remember(self, event_id: str, tracked: Tracked) -> None:
        self.open[event_id] = tracked
        self.open.move_to_end(event_id)
        while len(self.open) > OPEN_KEPT:
            gone, _ = self.open.popitem(last=False)
            self.review.pop(gone, None)


Result = Message | Unmapped


def _json(payload: bytes) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"{len(payload):,} bytes, more than {MAX_PAYLOAD_BYTES:,}")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None


def _seconds(value: Any) -> float | None:
    """A Frigate time (epoch seconds, float); None when absent or not a sane number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and 0 < value < 1e11 else None


def _zones(value: Any) -> list[str]:
    """A zone list as Frigate sends it; names that are not short text are dropped."""
    if not isinstance(value, list):
        return []
    return [z for z in value if isinstance(z, str) and 0 < len(z) <= MAX_ZONE]


def _score(obj: Mapping[str, Any]) -> float | None:
    for name in ("top_score", "score"):
        value = obj.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value) if 0 <= value <= 1 else None
    return None


def media_links(api_url: str | None, event_id: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """Links to Frigate's own API for what it keeps of this object (snapshot, clip), when a base URL is set."""
    if not api_url:
        return {}
    base = f"{api_url.rstrip('/')}/api/events/{quote(event_id, safe='')}"
    links = {}
    if obj.get("has_snapshot") is True:
        links["snapshot"] = f"{base}/snapshot.jpg"
    if obj.get("has_clip") is True:
        links["clip"] = f"{base}/clip.mp4"
    return links


def _box_top(obj: Any) -> float | None:
    """The top edge of a Frigate box `[x_min, y_min, x_max, y_max]` (pixels of the detect frame, y down)."""
    box = obj.get("box") if isinstance(obj, dict) else None
    if not isinstance(box, list) or len(box) != 4:
        return None
    top = box[1]
    if isinstance(top, bool) or not isinstance(top, int | float) or not math.isfinite(top) or not 0 <= top < 1e5:
        return None
    return float(top)


def recording_links(api_url: str | None, camera: str, start_s: float | None) -> dict[str, str]:
    """Links to Frigate's recordings around a track (its `/api/<camera>/start/<ts>/end/<ts>/clip.mp4`), when a
    base URL is set: they exist only where Frigate records that camera continuously."""
    if not api_url or start_s is None:
        return {}
    base = f"{api_url.rstrip('/')}/api/{quote(camera, safe='')}"
    return {"pre_clip": f"{base}/start/{start_s - PRE_S:.3f}/end/{start_s:.3f}/clip.mp4",
            "post_clip": f"{base}/start/{start_s:.3f}/end/{start_s + POST_S:.3f}/clip.mp4"}


def _rule_met(rule: ZoneRule, zone: str, label: str, entered: list[str], since: float | None, now: float) -> bool:
    if rule.objects and label not in rule.objects:
        return False
    if rule.dwell_s <= 0:
        return zone in entered  # passing through counts, even between two frames
    return since is not None and now - since >= rule.dwell_s


def event(payload: bytes, cameras: Mapping[str, Camera], memory: Memory, api_url: str | None,
          received_ms: int) -> list[Result]:
    """One `frigate/events` message -> the detection phases it means (none for a false positive)."""
    try:
        data = _json(payload)
    except ValueError as exc:
        return [Unmapped("frigate_malformed", str(exc))]
    if not isinstance(data, dict) or data.get("type") not in PHASES or not isinstance(data.get("after"), dict):
        return [Unmapped("frigate_malformed", "expected {type: new|update|end, after: {...}}")]
    obj: dict[str, Any] = data["after"]
    event_id, name, label = obj.get("id"), obj.get("camera"), obj.get("label")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID:
        return [Unmapped("frigate_malformed", f"after.id must be text of 1 to {MAX_ID} characters")]
    if not isinstance(name, str) or not isinstance(label, str):
        return [Unmapped("frigate_malformed", "after.camera and after.label must be text")]
    camera = cameras.get(name)
    if camera is None:
        return [Unmapped("frigate_unknown_camera", f"no registry device has aliases.frigate = {name[:64]!r}")]
    if obj.get("false_positive") is True:
        memory.open.pop(event_id, None)
        return []
    score = _score(obj)
    if score is None:
        return [Unmapped("frigate_malformed", "after.top_score must be a number from 0 to 1")]
    phase = PHASES[data["type"]]
    now = _seconds(obj.get("end_time") if phase == "end" else obj.get("frame_time")) or received_ms / 1000
    current, entered = _zones(obj.get("current_zones")), _zones(obj.get("entered_zones"))
    tracked = memory.open.get(event_id)
    if tracked is None:
        before = data.get("before")
        tracked = Tracked(name, {}, first_top=_box_top(before) if _box_top(before) is not None else _box_top(obj))
        if phase != "end":
            memory.remember(event_id, tracked)
    since = {z: tracked.in_zone_since.get(z, now) for z in current}  # a zone left and entered again starts anew
    tracked.in_zone_since = since

    common: dict[str, Any] = {"type": "detection", "score": round(score, 4), "ts": int(now * 1000)}
    common |= media_links(api_url, event_id, obj)
    if (review := memory.review.get(event_id)) is not None:
        common["review"] = review
    out: list[Result] = []
    base_label = LABELS.get(label)
    if base_label is not None:
        base = {**common, "id": event_id, "label": base_label, "phase": phase}
        if current:
            base["zone"] = current[0]
        tracked.last = base
        out.append(Message(camera.site, camera.device, "event", base))
    evidence: dict[str, Any] = {}
    if camera.zones:
        evidence = recording_links(api_url, name, _seconds(obj.get("start_time")))
        if tracked.first_top is not None:
            evidence["start_top_px"] = tracked.first_top
    for zone, rule in camera.zones.items():
        derived_id = f"{event_id}:{rule.label}"
        started = derived_id in tracked.derived
        if not started and phase != "end" and _rule_met(rule, zone, label, entered, since.get(zone), now):
            tracked.derived.add(derived_id)
            out.append(Message(camera.site, camera.device, "event", {
                **common, **evidence, "id": derived_id, "label": rule.label, "phase": "start", "zone": zone}))
        elif started:
            out.append(Message(camera.site, camera.device, "event",
                               {**common, **evidence, "id": derived_id, "label": rule.label,
                                "phase": "end" if phase == "end" else "update", "zone": zone}))
    if phase == "end":
        memory.open.pop(event_id, None)
        memory.review.pop(event_id, None)
    return out


def review(payload: bytes, cameras: Mapping[str, Camera], memory: Memory, received_ms: int) -> list[Result]:
    """One `frigate/reviews` message: its severity goes on the detections it groups, from now on, and an open
    detection whose severity changed says so at once (an `update` carrying `review`)."""
    try:
        data = _json(payload)
    except ValueError as exc:
        return [Unmapped("frigate_malformed", str(exc))]
    after = data.get("after") if isinstance(data, dict) else None
    if not isinstance(after, dict) or data.get("type") not in PHASES:
        return [Unmapped("frigate_malformed", "expected {type: new|update|end, after: {...}}")]
    name, severity, detail = after.get("camera"), after.get("severity"), after.get("data")
    if not isinstance(name, str) or severity not in REVIEW_SEVERITIES or not isinstance(detail, dict):
        return [Unmapped("frigate_malformed", "after.camera, after.severity (alert|detection) and after.data "
                                              "are required")]
    camera = cameras.get(name)
    if camera is None:
        return [Unmapped("frigate_unknown_camera", f"no registry device has aliases.frigate = {name[:64]!r}")]
    ids = detail.get("detections")
    if not isinstance(ids, list):
        return [Unmapped("frigate_malformed", "after.data.detections must be a list of event ids")]
    out: list[Result] = []
    for event_id in ids:
        if not isinstance(event_id, str) or len(event_id) > MAX_ID:
            continue
        if data["type"] == "end":
            memory.review.pop(event_id, None)
            continue
        changed = memory.review.get(event_id) != severity
        memory.review[event_id] = severity
        tracked = memory.open.get(event_id)
        if changed and tracked is not None and tracked.last and len(memory.review) <= OPEN_KEPT:
            update = {**tracked.last, "phase": "update", "review": severity, "ts": received_ms}
            tracked.last = update
            out.append(Message(camera.site, camera.device, "event", update))
    while len(memory.review) > OPEN_KEPT:  # reviews of objects never seen (another hub's share, say)
        memory.review.pop(next(iter(memory.review)))
    return out


def available(payload: bytes, cameras: Mapping[str, Camera]) -> list[Result]:
    """`frigate/available`: Frigate stopping takes every camera it serves offline; starting brings them back
    (a camera whose stream is down says so on its own status topic)."""
    text = payload.strip().decode("utf-8", "replace").lower()
    if text not in ("online", "offline"):
        return [Unmapped("frigate_malformed", "frigate/available is 'online' or 'offline'")]
    state = {"online": text == "online"}
    return [Message(c.site, c.device, "state", dict(state)) for c in _unique(cameras)]


def status(camera_name: str, role: str, payload: bytes, cameras: Mapping[str, Camera],
           received_ms: int) -> list[Result]:
    """`frigate/<camera>/status/<role>`: the detect stream down is `video_loss` (raised, then cleared when it
    runs again); a camera turned off in Frigate is offline. Other roles (record, audio) carry no contract
    meaning yet and are ignored."""
    camera = cameras.get(camera_name)
    if camera is None:
        return [Unmapped("frigate_unknown_camera", f"no registry device has aliases.frigate = {camera_name[:64]!r}")]
    text = payload.strip().decode("utf-8", "replace").lower()
    if text not in ("online", "offline", "disabled"):
        return [Unmapped("frigate_malformed", f"status/{role[:32]} is 'online', 'offline' or 'disabled'")]
    if role != "detect":
        return []
    if text == "disabled":
        return [Message(camera.site, camera.device, "state", {"online": False})]
    fault = {"type": "fault", "id": f"frigate-detect-{received_ms}", "code": "video_loss",
             "active": text == "offline", "ts": received_ms, "detail": f"Frigate detect stream {text}"}
    return [Message(camera.site, camera.device, "state", {"online": True}),
            Message(camera.site, camera.device, "event", fault)]


def _unique(cameras: Mapping[str, Camera]) -> Sequence[Camera]:
    seen: dict[tuple[str, str], Camera] = {}
    for camera in cameras.values():
        seen.setdefault((camera.site, camera.device), camera)
    return list(seen.values())


def route(topic: str, prefix: str) -> tuple[str, ...] | None:
    """Which Frigate message a topic is: ('events',), ('reviews',), ('available',), ('status', camera, role);
    None for the many topics the adapter does not consume."""
    if not topic.startswith(prefix + "/"):
        return None
    rest = topic[len(prefix) + 1:].split("/")
    if rest in (["events"], ["reviews"], ["available"]):
        return (rest[0],)
    if len(rest) == 3 and rest[1] == "status" and rest[0] and rest[2]:
        return ("status", rest[0], rest[2])
    return None
