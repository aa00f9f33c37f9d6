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

from devices.base import Accepted, DeviceKind, FaultSpec, KindSettings
from devices.rules import Clear, Deadline, Intent, Raise, Rule
from hub.alerts.models import (
    HUB_FAULTS,
    HUB_KIND,
    HUB_SITE,
    OFFLINE,
    Alert,
    acknowledge,
    escalate,
    open_alert,
    recur,
    resolve,
)
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
        settings: Mapping[str, KindSettings] | None = None,
        escalate_after_s: float = 300.0,
    ) -> None:
        self.kinds = kinds
        self.store = store
        self.live = live
        self.registry = registry
        self.notify = notify
        self.clock = clock
        settings = settings or {}
        self._rules: dict[str, tuple[tuple[Rule, ...], KindSettings]] = {
            name: (kind.rules, settings.get(name) or kind.settings()) for name, kind in kinds.items() if kind.rules}
        """kind -> (its rules, its thresholds), for the kinds that have rules"""
        self.escalate_after_ms = int(escalate_after_s * 1000)
        self.active: dict[Key, Alert] = {a.key: a for a in store.active()}
        self.deadlines: dict[Key, tuple[int, str | None]] = {}
        """derived alerts waiting for their condition to last: key -> (when to raise, detail)"""
        self._memory: dict[tuple[str, str, str], dict[str, object]] = {}

    def _changed(self, alert: Alert) -> Alert:
        """Persist, index and announce a new version of an alert. Another copy may have opened this device's
        alert first: its alert is indexed instead, and not announced again (that copy did)."""
        stored = self.store.save(alert)
        if stored is not alert:
            self.active[stored.key] = stored
            return stored
        if alert.active:
            self.active[alert.key] = alert
        else:
            self.active.pop(alert.key, None)
        self.notify(alert)
        return alert

    def _raise(self, site: str, kind: str, device: str, code: str, detail: str | None, now_ms: int,
               by: str = "device", spec: FaultSpec | None = None) -> None:
        key = (site, kind, device, code)
        current = self.active.get(key)
        if current is not None:
            if by == "device" and code != "offline":  # a retained will again, or a rule re-firing, is not news
                self._changed(recur(current, detail, now_ms))
            return
        if spec is None:
            spec = OFFLINE if code == "offline" else self.kinds[kind].faults.get(code) or self.kinds[kind].derived[code]
        self._changed(open_alert(site, kind, device, code, spec, detail, now_ms, by))

    def _clear(self, key: Key, now_ms: int, by: str = "device") -> None:
        current = self.active.get(key)
        if current is not None and (by == "device" or current.opened_by == by):
            self._changed(resolve(current, by, None, now_ms))

    def on_message(self, msg: Accepted, state: DeviceState) -> None:
        """Pipeline listener: faults and online state of every accepted message."""
        now_ms = self.clock()
        site, kind, device = msg.site, msg.kind, msg.device
        payload = msg.payload
        if msg.channel == "state" and not payload.online:  # type: ignore[attr-defined]
            self._raise(site, kind, device, "offline", "the device reported itself offline", now_ms, by="hub")
        elif self.active:
            self._clear((site, kind, device, "offline"), now_ms)
        if msg.channel == "event" and payload.type == "fault":  # type: ignore[attr-defined]
            code = payload.code  # type: ignore[attr-defined]
            if payload.active:  # type: ignore[attr-defined]
                self._raise(site, kind, device, code, payload.detail, now_ms)  # type: ignore[attr-defined]
            else:
                self._clear((site, kind, device, code), now_ms)
        ruled = self._rules.get(kind)
        if ruled is not None:
            rules, thresholds = ruled
            memory = self._memory.setdefault((site, kind, device), {})
            for rule in rules:
                for intent in rule(msg, state.telemetry, memory, now_ms, thresholds):
                    self._apply(site, kind, device, intent, now_ms)

    def _apply(self, site: str, kind: str, device: str, intent: Intent, now_ms: int) -> None:
        """Carry out a rule's intent; a rule clears only what a rule raised, never a device's own fault."""
        key = (site, kind, device, intent.code)
        if isinstance(intent, Raise):
            self._raise(site, kind, device, intent.code, intent.detail, now_ms, by="rule")
        elif isinstance(intent, Clear):
            self.deadlines.pop(key, None)
            self._clear(key, now_ms, by="rule")
        elif isinstance(intent, Deadline) and key not in self.deadlines and key not in self.active:
            self.deadlines[key] = (intent.at_ms, intent.detail)

    def check_deadlines(self) -> int:
        """Raise derived alerts whose condition lasted; returns how many."""
        now_ms = self.clock()
        due = [(key, detail) for key, (at_ms, detail) in self.deadlines.items() if at_ms <= now_ms]
        for key, detail in due:
            del self.deadlines[key]
            self._raise(*key, detail, now_ms, by="rule")
        return len(due)

    def check_escalations(self) -> int:
        """Escalate critical alerts still unacknowledged after `escalate_after_s`; returns how many."""
        now_ms = self.clock()
        late = [a for a in self.active.values() if a.severity == "critical" and a.state == "open"
                and a.escalated_ms is None and now_ms - a.opened_ms >= self.escalate_after_ms]
        for alert in late:
            self._changed(escalate(alert, now_ms))
        return len(late)

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
                self._raise(*key, "offline", f"silent for {silent_ms // 1000} s", now_ms, by="hub")
                raised += 1
        return raised

    def raise_derived(self, site: str, kind: str, device: str, code: str, detail: str | None) -> None:
        """A derived alert (a code of the kind's `derived`) raised by a controller rather than a rule: opened
        once by the hub, kept until `clear_derived`; a device's own fault is never cleared this way."""
        self._raise(site, kind, device, code, detail, self.clock(), by="hub", spec=self.kinds[kind].derived[code])

    def clear_derived(self, site: str, kind: str, device: str, code: str) -> None:
        self._clear((site, kind, device, code), self.clock(), by="hub")

    def raise_hub(self, device: str, code: str, detail: str | None) -> None:
        """The hub's own trouble (`device` names the hub): opened once, kept until `clear_hub`."""
        self._raise(HUB_SITE, HUB_KIND, device, code, detail, self.clock(), by="hub", spec=HUB_FAULTS[code])

    def clear_hub(self, device: str, code: str) -> None:
        self._clear((HUB_SITE, HUB_KIND, device, code), self.clock(), by="hub")

    def hub_codes(self, device: str) -> set[str]:
        """Codes of this hub's own alerts that are active (also ones left open by an earlier run)."""
        return {key[3] for key in self.active if key[:3] == (HUB_SITE, HUB_KIND, device)}

    def ack(self, alert_id: str, by: str, note: str | None) -> Alert | None:
        alert = self.find(alert_id)
        return None if alert is None else self._changed(acknowledge(alert, by, note, self.clock()))

    def resolve(self, alert_id: str, by: str, note: str | None) -> Alert | None:
        alert = self.find(alert_id)
        return None if alert is None else self._changed(resolve(alert, by, note, self.clock()))

    def find(self, alert_id: str) -> Alert | None:
        """An alert by id: active ones from memory, older ones from the store."""
        for alert in self.active.values():
            if alert.id == alert_id:
                return alert
        return self.store.get(alert_id)
