"""Live state per device: what the big screen and `/api/devices` show right now.

Kept in memory and rebuilt from the wire after a restart (devices' `state` is
retained, telemetry is periodic); the time series live in the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devices.base import Accepted
from hub.ingest.normalize import SeqStats
from hub.registry import Device, DeviceKey

DEFAULT_HEARTBEAT_S = 300.0


@dataclass(slots=True)
class DeviceState:
    """The latest of everything heard from one device."""

    site: str
    kind: str
    device: str
    online_flag: bool | None = None
    """Last `state.online` (None until one arrives); any other message sets it True."""
    last_seen_ms: int | None = None
    telemetry: dict[str, Any] = field(default_factory=dict)
    telemetry_ms: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    """fw, ip, model from `state`."""
    open_faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    """fault code -> {since_ms, detail}"""
    last_event: dict[str, Any] | None = None
    seq: SeqStats = field(default_factory=SeqStats)
    messages: int = 0

    def online(self, now_ms: int, heartbeat_s: float) -> bool:
        """Online when the device said so (or spoke) and was heard within its heartbeat window."""
        if not self.online_flag or self.last_seen_ms is None:
            return False
        return now_ms - self.last_seen_ms <= heartbeat_s * 1000


class LiveState:
    """All devices' live state, updated by the pipeline for each accepted message."""

    def __init__(self, heartbeat_s: float = DEFAULT_HEARTBEAT_S) -> None:
        self.heartbeat_s = heartbeat_s
        self.devices: dict[DeviceKey, DeviceState] = {}

    def get(self, key: DeviceKey) -> DeviceState:
        state = self.devices.get(key)
        if state is None:
            state = self.devices[key] = DeviceState(*key)
        return state

    def apply(self, state: DeviceState, msg: Accepted) -> None:
        """Fold one accepted message into its device's state."""
        payload = msg.payload
        state.messages += 1
        state.last_seen_ms = msg.received_ms
        channel = msg.channel
        if channel == "state":
            state.online_flag = payload.online  # type: ignore[attr-defined]
            state.info.update(payload.model_dump(include={"fw", "ip", "model"}, exclude_none=True))
            return
        state.online_flag = True
        if channel == "telemetry":
            state.telemetry.update(msg.fields())
            state.telemetry_ms = msg.time_ms
        elif channel == "event":
            event = payload.model_dump(exclude_none=True)
            event["time"] = msg.time_ms
            state.last_event = event
            if event["type"] == "fault":
                code = event["code"]
                if event["active"]:
                    state.open_faults.setdefault(code, {"since": msg.time_ms, "detail": event.get("detail")})
                else:
                    state.open_faults.pop(code, None)

    def heartbeat_for(self, device: Device | None) -> float:
        return device.heartbeat_s if device is not None and device.heartbeat_s else self.heartbeat_s
