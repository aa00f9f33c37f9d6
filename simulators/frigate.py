"""A simulated Frigate NVR: the MQTT stream Frigate publishes for an estate's cameras (`smarthub simulate
--vendor frigate`), so the Frigate adapter can be tried end to end without cameras or an NVR.

Message shapes follow docs.frigate.video/integrations/mqtt: `available` and `<camera>/status/detect`
(retained), `events` (`new`, `update`s, `end` per tracked object, with `before`/`after`) and `reviews`.
`stream` is pure (a seed decides every byte); `publish` is the thin edge that paces it onto a broker.
"""

from __future__ import annotations

import asyncio
import random
import string
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from hub.config import MqttTarget
from hub.registry import Device, RegistryFile, Site, ZoneRule


class SimCamera(NamedTuple):
    """One Frigate camera: its name, our device slug, its zone (if any) and what tends to pass there."""

    name: str
    device: str
    zone: str | None
    rule: ZoneRule | None
    objects: tuple[tuple[str, float], ...]
    """(Frigate label, weight)"""
    stay_s: tuple[float, float]
    """How long an object stays in view, min and max."""


CAMERAS = (
    SimCamera("lane_north", "cam-lane-n", "fire_lane",
              ZoneRule(label="fire_lane_blocked", objects=["person", "car"], dwell_s=30),
              (("person", 3), ("car", 1)), (8, 70)),
    SimCamera("b3_facade", "cam-b3-facade", "facade", ZoneRule(label="high_altitude_throw"),
              (("bird", 4), ("sports ball", 1)), (1, 4)),
    SimCamera("lift_b3", "cam-b3-lift1", "car", ZoneRule(label="ebike_in_elevator", objects=["bicycle", "motorcycle"]),
              (("person", 6), ("bicycle", 1), ("motorcycle", 1)), (10, 40)),
    SimCamera("gate_east", "cam-gate-e", None, None, (("person", 2), ("car", 3)), (5, 20)),
)
FACADE = "b3_facade"
FACADE_MARKS = [(1000.0, 1), (820.0, 4), (600.0, 8), (420.0, 12), (300.0, 16), (250.0, 19)]
"""The simulated facade's floor marks (registry `floor_calibration`): an 18-storey building seen from below in
a 1080-row detect frame, floor 1's slab at row 1000, the roof line (floor 19) at row 250."""
FALL_PX_PER_S2 = 180.0
"""How fast a thrown object's box moves down the frame (half g, in pixels: the facade is ~60 m over ~750 rows)."""
UPDATE_EVERY_S = 5.0
MEAN_GAP_S = 15.0
"""Mean time between two tracked objects, over all cameras."""


class Publish(NamedTuple):
    at_ms: int
    topic: str
    payload: bytes
    retain: bool


@dataclass(slots=True)
class _Object:
    event_id: str
    review_id: str
    camera: SimCamera
    label: str
    start_s: float
    end_s: float
    score: float
    entered: list[str] = field(default_factory=list)
    top_px: float = 496.0
    """The top of its first box; a facade object falls from there."""
    thrown: bool = False
    """Always through the facade zone (a throw, not a bird passing)."""

    def box(self, at_s: float) -> list[int]:
        """Its box at a time: a facade object falls (and leaves the frame's bottom), others stay put."""
        top = self.top_px
        if self.camera.name == FACADE:
            top = min(1040.0, top + FALL_PX_PER_S2 * (at_s - self.start_s) ** 2)
        return [432, int(top), 472, int(top) + 40]


def registry(site: str) -> RegistryFile:
    """The registry the hub needs for this Frigate's cameras (`--registry-out`)."""
    devices = [Device(site=site, kind="camera", device=c.device, name=c.name, aliases={"frigate": c.name},
                      zones={c.zone: c.rule} if c.zone and c.rule else {},
                      floor_calibration=FACADE_MARKS if c.name == FACADE else []) for c in CAMERAS]
    return RegistryFile(sites={site: Site()}, devices=devices)


def _obj_json(o: _Object, frame_s: float, zones: list[str], score: float, ended: bool) -> dict[str, Any]:
    return {"id": o.event_id, "camera": o.camera.name, "frame_time": round(frame_s, 6),
            "snapshot": {"frame_time": round(frame_s, 6), "box": [415, 489, 528, 700], "area": 12728,
                         "region": [260, 446, 660, 846], "score": score, "attributes": []},
            "label": o.label, "sub_label": None, "top_score": o.score, "false_positive": False,
            "start_time": round(o.start_s, 6), "end_time": round(o.end_s, 6) if ended else None, "score": score,
            "box": o.box(frame_s), "area": 1600, "ratio": 1.0, "region": [218, 440, 693, 915],
            "current_zones": zones, "entered_zones": list(o.entered), "thumbnail": None, "has_snapshot": True,
            "has_clip": ended, "active": not ended, "stationary": False, "motionless_count": 0,
            "position_changes": 1, "attributes": {}, "current_attributes": []}


def _review(o: _Object, kind: str, severity: str, end_s: float | None) -> dict[str, Any]:
    after = {"id": o.review_id, "camera": o.camera.name, "start_time": round(o.start_s, 6),
             "end_time": round(end_s, 6) if end_s else None, "severity": severity,
             "thumb_path": f"/media/frigate/clips/review/thumb-{o.camera.name}-{o.review_id}.webp",
             "data": {"detections": [o.event_id], "objects": [o.label], "sub_labels": [],
                      "zones": list(o.entered), "audio": []}}
    return {"type": kind, "before": {**after, "severity": "detection"}, "after": after}


def _object_messages(o: _Object, prefix: str, rng: random.Random) -> Iterator[tuple[float, str, dict[str, Any]]]:
    """(time s, topic, payload) of one tracked object's life, in time order."""
    zone, rule = o.camera.zone, o.camera.rule
    in_zone = zone is not None and (o.thrown or o.camera.name != FACADE or o.label != "bird" or rng.random() < 0.2)
    before = _obj_json(o, o.start_s, [], round(o.score * 0.9, 4), False)
    t, kind = o.start_s + 0.5, "new"
    severity = "detection"
    yield o.start_s + 0.5, f"{prefix}/reviews", _review(o, "new", severity, None)
    while True:
        ended = t >= o.end_s
        zones = [zone] if in_zone and zone and not ended else []
        if zones and zone not in o.entered:
            o.entered.append(zone)
        score = round(min(1.0, o.score * rng.uniform(0.85, 1.0)), 4)
        after = _obj_json(o, min(t, o.end_s), zones, score, ended)
        yield min(t, o.end_s), f"{prefix}/events", {"type": "end" if ended else kind, "before": before, "after": after}
        lingering = rule is not None and zones and t - o.start_s >= max(rule.dwell_s, 1)
        if severity == "detection" and lingering and (not rule.objects or o.label in rule.objects):
            severity = "alert"
            yield t + 0.1, f"{prefix}/reviews", _review(o, "update", severity, None)
        if ended:
            yield o.end_s + 0.2, f"{prefix}/reviews", _review(o, "end", severity, o.end_s)
            return
        before, kind = after, "update"
        t = min(t + UPDATE_EVERY_S, o.end_s)


def _event_id(rng: random.Random, at_s: float) -> str:
    return f"{at_s:.6f}-" + "".join(rng.choices(string.ascii_lowercase + string.digits, k=6))


def _thrown(rng: random.Random, at_s: float) -> _Object:
    """An object thrown from a window of the facade: it starts at a floor's height and falls for 2.5 s."""
    facade = next(c for c in CAMERAS if c.name == FACADE)
    obj = _Object(_event_id(rng, at_s), _event_id(rng, at_s), facade, "bottle", at_s, at_s + 2.5,
                  round(rng.uniform(0.7, 0.9), 4), thrown=True)
    obj.top_px = round(rng.uniform(FACADE_MARKS[-1][0] + 10, FACADE_MARKS[1][0]), 1)  # floors 4 to 18
    return obj


def stream(seed: int, start_ms: int, duration_s: float, prefix: str = "frigate", throws: int = 0) -> list[Publish]:
    """Every message a Frigate of `CAMERAS` publishes over `duration_s` from `start_ms`, in time order; `throws`
    high-altitude throws on the facade besides, evenly spread."""
    rng = random.Random(seed)
    start_s = start_ms / 1000
    out: list[tuple[float, int, str, dict[str, Any] | bytes, bool]] = [(start_s, 0, f"{prefix}/available",
                                                                         b"online", True)]
    out += [(start_s, 0, f"{prefix}/{c.name}/status/detect", b"online", True) for c in CAMERAS]
    t, n = start_s, 0
    while True:
        t += rng.expovariate(1 / MEAN_GAP_S)
        if t >= start_s + duration_s:
            break
        camera = rng.choice(CAMERAS)
        labels, weights = zip(*camera.objects, strict=True)
        label = rng.choices(labels, weights)[0]
        stay = rng.uniform(*camera.stay_s)
        score = round(rng.uniform(0.6, 0.97), 4)
        obj = _Object(_event_id(rng, t), _event_id(rng, t), camera, label, t, t + stay, score)
        n += 1
        out += [(at, n, topic, payload, False) for at, topic, payload in _object_messages(obj, prefix, rng)]
    for i in range(throws):
        obj = _thrown(rng, start_s + duration_s * (i + 1) / (throws + 1))
        n += 1
        out += [(at, n, topic, payload, False) for at, topic, payload in _object_messages(obj, prefix, rng)]
    out.sort(key=lambda m: (m[0], m[1]))
    return [Publish(int(at * 1000), topic, payload if isinstance(payload, bytes) else orjson.dumps(payload), retain)
            for at, _, topic, payload, retain in out]


async def publish(target: MqttTarget, messages: list[Publish], speed: float = 1.0,
                  on_sent: Callable[[int], None] | None = None) -> int:
    """Publish the stream at QoS 1 as Frigate does, paced by its times (`speed` times faster); returns how many."""
    import aiomqtt

    if not messages:
        return 0
    t0, wall0 = messages[0].at_ms, time.monotonic()
    sent = 0
    async with aiomqtt.Client(target.host, target.port, username=target.username, password=target.password,
                              identifier=f"frigate-sim-{uuid.uuid4().hex[:8]}", tls_context=target.tls) as client:
        for m in messages:
            delay = (m.at_ms - t0) / 1000 / speed - (time.monotonic() - wall0)
            if delay > 0:
                await asyncio.sleep(delay)
            await client.publish(m.topic, m.payload, qos=1, retain=m.retain)
            sent += 1
            if on_sent is not None:
                on_sent(sent)
    return sent
