"""The live bus behind `WS /api/live`: events, alert and incident changes and device updates, to every screen.

Ingest never waits for a screen. Each subscriber has its own bounded queue; one
that falls too far behind loses its oldest messages and is told to resync
(re-read the REST API). Device updates are coalesced: at most one message per
second listing the devices that changed, however fast their telemetry comes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from devices.base import Accepted
from hub.alerts.models import Alert
from hub.alerts.orders import WorkOrder
from hub.incidents.merge import Incident
from hub.registry import DeviceKey, Registry
from hub.state import DeviceState, LiveState
from hub.times import iso

QUEUE_MAX = 2_000
DEVICE_FLUSH_S = 1.0


class Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_MAX)
        self.dropped = 0

    def put(self, message: bytes) -> None:
        if self.queue.full():
            # Too far behind: drop what is queued and tell the screen to re-read the REST API.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.dropped += 1
            self.queue.put_nowait(b'{"type":"resync"}')
        self.queue.put_nowait(message)


class LiveBus:
    def __init__(self, live: LiveState, registry: Registry) -> None:
        self.live = live
        self.registry = registry
        self.subscribers: set[Subscriber] = set()
        self._dirty: set[DeviceKey] = set()

    def subscribe(self) -> Subscriber:
        sub = Subscriber()
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _send(self, message: dict[str, Any]) -> None:
        if self.subscribers:
            data = orjson.dumps(message)
            for sub in self.subscribers:
                sub.put(data)

    def on_message(self, msg: Accepted, state: DeviceState) -> None:
        """Pipeline listener: events now, device changes at the next flush."""
        if not self.subscribers:
            return
        self._dirty.add((msg.site, msg.kind, msg.device))
        if msg.channel == "event":
            event = msg.payload.model_dump(mode="json", exclude_none=True)
            self._send({"type": "event", "event": {"site": msg.site, "kind": msg.kind, "device": msg.device,
                                                   "time": iso(msg.time_ms), **event}})

    def on_alert(self, alert: Alert) -> None:
        self._send({"type": "alert", "alert": alert.to_json()})

    def on_incident(self, incident: Incident) -> None:
        self._send({"type": "incident", "incident": incident.to_json()})

    def on_order(self, order: WorkOrder) -> None:
        self._send({"type": "order", "order": order.to_json(int(time.time() * 1000))})

    def flush_devices(self) -> None:
        if not self._dirty or not self.subscribers:
            self._dirty.clear()
            return
        now_ms = int(time.time() * 1000)
        devices = []
        for key in self._dirty:
            state = self.live.devices.get(key)
            if state is None:
                continue
            devices.append({"site": key[0], "kind": key[1], "device": key[2],
                            "online": state.online(now_ms, self.live.heartbeat_for(self.registry.get(key))),
                            "last_seen": iso(state.last_seen_ms), "telemetry": state.telemetry,
                            "open_faults": sorted(state.open_faults)})
        self._dirty.clear()
        self._send({"type": "devices", "devices": devices})

    async def run(self) -> None:
        while True:
            await asyncio.sleep(DEVICE_FLUSH_S)
            self.flush_devices()
