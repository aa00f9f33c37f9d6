"""What an incident carries as evidence: the detections of its cameras with their media links, time and, for a
track that starts high on a facade (高空抛物), the floor band it came from. Pure: the registry is passed in.

A detection is one happening of one camera (one `id` through its `start`, `update`, `end` phases, each a part of
the incident); its links (`snapshot`, `clip`, `pre_clip`, `post_clip`, as the camera or its adapter gave them:
adapters/frigate links Frigate's API) are the first of each that any phase carried, and its start height the
`start_top_px` its phases carry, read against the camera's `floor_calibration` (hub/incidents/floors.py). An
incident without a detection that has a link or a start height carries no evidence (None).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.incidents.floors import floor_band
from hub.incidents.merge import Incident, Part
from hub.registry import Device, DeviceKey
from hub.times import iso

MEDIA_ROLES = ("snapshot", "pre_clip", "post_clip", "clip")
"""The links a detection may carry, in the order an export fetches them (stills first: small and telling)."""
DETECTION_TYPE = "detection"


def _detection(parts: list[Part], device: Device | None) -> dict[str, Any] | None:
    first = parts[0]
    fields = [p.fields for p in parts]
    media = {}
    for role in MEDIA_ROLES:
        url = next((f[role] for f in fields if isinstance(f.get(role), str)), None)
        if url is not None:
            media[role] = url
    top = next((float(f["start_top_px"]) for f in fields if isinstance(f.get("start_top_px"), int | float)), None)
    if not media and top is None:
        return None
    scores = [f["score"] for f in fields if isinstance(f.get("score"), int | float)]
    calibration = device.floor_calibration if device is not None else []
    seen_by = {"site": first.site, "device": first.device}  # the camera, as registered
    if device is not None:
        seen_by |= {k: v for k in ("name", "building", "location", "place") if (v := getattr(device, k)) is not None}
    return {
        "id": first.fields.get("id", first.ref), "site": first.site, "device": first.device, "seen_by": seen_by,
        "label": first.fields.get("label"), "zone": next((f["zone"] for f in fields if f.get("zone")), None),
        "score": max(scores) if scores else None, "at_ms": first.at_ms, "at": iso(first.at_ms),
        "phases": [f.get("phase") for f in fields], "media": media, "start_top_px": top,
        "floors": floor_band(top, calibration).to_json() | {"calibration_marks": len(calibration)},
    }


def evidence_of(incident: Incident, device_of: Callable[[DeviceKey], Device | None]) -> dict[str, Any] | None:
    """The incident's evidence, or None when none of its detections links media or carries a start height."""
    groups: dict[tuple[str, str, str, str], list[Part]] = {}
    for part in incident.parts:
        if part.source == "event" and part.fields.get("type") == DETECTION_TYPE:
            key = (part.site, part.kind, part.device, str(part.fields.get("id", part.ref)))
            groups.setdefault(key, []).append(part)
    if not groups:
        return None
    detections = []
    for (site, kind, device, _), parts in groups.items():
        made = _detection(sorted(parts, key=lambda p: p.at_ms), device_of((site, kind, device)))
        if made is not None:
            detections.append(made)
    if not detections:
        return None
    detections.sort(key=lambda d: d["at_ms"])
    return {"incident": incident.id, "site": incident.site, "title": incident.title, "title_en": incident.title_en,
            "at": detections[0]["at"], "detections": detections}
