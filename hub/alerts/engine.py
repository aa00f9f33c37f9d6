"""Turns what devices say (and their silence) into alerts, and owns each alert's lifecycle.

A pipeline listener: synchronous and cheap on the hot path. Each kind's fault
table decides severity and titles; a fault event with `active: true` opens an
alert (or counts another occurrence of the open one), `active: false` resolves
it. The hub raises `offline` when a device's `state` turns false or it stays
silent past its heartbeat window, and resolves it when the device is heard
again. Time comes from an injected clock, so tests drive it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from devices.base import Accepted, DeviceKind
from hub.alerts.models import OFFLINE, Alert, acknowledge, open_alert, recur, resolve
from hub.alerts.store import AlertStore
from hub.registry import Registry
from hub.state import DeviceState, LiveState

log = logging.getLogger(__name__)

Key = tuple[str, str, str, str]


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class AlertEngine:
    def __init__(
        self,
        kinds: Mapping[str, DeviceKind],
        store: AlertStore,
        live: LiveState,
        registry: Registry,
        notify: Callable[[Alert], None],
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.kinds = kinds
        self.store = store
        self.live = live
        self.registry = registry
        self.notify = notify
        self.clock = clock
        self.active: dict[Key, Alert] = {a.key: a for a in store.active()}

    def _changed(self, alert: Alert) -> Alert:
        """Persist, index and announce a new version of an alert."""
        self.store.save(alert)
        if alert.active:
            self.active[alert.key] = alert
        else:
            self.active.pop(alert.key, None)
        self.notify(alert)
        return alert

    def _raise(self, site: str, kind: str, device: str, code: str, detail: str | None, now_ms: int) -> None:
        key = (site, kind, device, code)
        current = self.active.get(key)
        if current is not None:
            if code != "offline":  # a device repeating `offline` (a retained will, again) is not news
                self._changed(recur(current, detail, now_ms))
            return
        spec = OFFLINE if code == "offline" else self.kinds[kind].faults[code]
        self._changed(open_alert(site, kind, device, code, spec, detail, now_ms))

    def _clear(self, key: Key, now_ms: int) -> None:
        current = self.active.get(key)
        if current is not None:
            self._changed(resolve(current, "device", None, now_ms))

    def on_message(self, msg: Accepted, state: DeviceState) -> None:
        """Pipeline listener: faults and online state of every accepted message."""
        now_ms = self.clock()
        site, kind, device = msg.site, msg.kind, msg.device
        payload = msg.payload
        if msg.channel == "state" and not payload.online:  # type: ignore[attr-defined]
            self._raise(site, kind, device, "offline", "the device reported itself offline", now_ms)
        else:
            self._clear((site, kind, device, "offline"), now_ms)
        if msg.channel == "event" and payload.type == "fault":  # type: ignore[attr-defined]
            code = payload.code  # type: ignore[attr-defined]
            if payload.active:  # type: ignore[attr-defined]
                self._raise(site, kind, device, code, payload.detail, now_ms)  # type: ignore[attr-defined]
            else:
                self._clear((site, kind, device, code), now_ms)

    def check_heartbeats(self) -> int:
        """Raise `offline` for devices silent past their window; returns how many were raised."""
        now_ms = self.clock()
        raised = 0
        for key, state in self.live.devices.items():
            if not state.online_flag or state.last_seen_ms is None:
                continue
            window_s = self.live.heartbeat_for(self.registry.get(key))
            silent_ms = now_ms - state.last_seen_ms
            if silent_ms > window_s * 1000 and (*key, "offline") not in self.active:
                self._raise(*key, "offline", f"silent for {silent_ms // 1000} s", now_ms)
                raised += 1
        return raised

    def ack(self, alert_id: str, by: str, note: str | None) -> Alert | None:
        alert = self._find(alert_id)
        return None if alert is None else self._changed(acknowledge(alert, by, note, self.clock()))

    def resolve(self, alert_id: str, by: str, note: str | None) -> Alert | None:
        alert = self._find(alert_id)
        return None if alert is None else self._changed(resolve(alert, by, note, self.clock()))

    def _find(self, alert_id: str) -> Alert | None:
        for alert in self.active.values():
            if alert.id == alert_id:
                return alert
        return self.store.get(alert_id)
