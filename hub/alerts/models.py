"""The alert of contract section 4 and its lifecycle, as pure functions over immutable values.

open -> acknowledged -> resolved (or open -> resolved). A device's fault that
repeats while its alert is still open counts as another occurrence of the same
alert instead of a new one, so the screen shows one line per problem.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from devices.base import FaultSpec, Severity
from hub.times import iso

State = Literal["open", "acknowledged", "resolved"]
OFFLINE = FaultSpec(Severity.MAJOR, "设备离线", "Device offline")
"""The alert the hub itself raises for a device that went quiet or said it is offline."""

HUB_KIND = "hub"
HUB_SITE = "*"
"""The site of the hub's own alerts: they concern every community this hub serves, so every wall shows
them (a `?site=` filter includes them) and no real site can be named so (site slugs start with [a-z0-9])."""
HUB_FAULTS = {
    "broker_lost": FaultSpec(Severity.CRITICAL, "消息服务器连接中断，数据停止接收",
                             "MQTT broker lost: no data coming in"),
    "ingest_held": FaultSpec(Severity.CRITICAL, "缓存已满，暂停接收数据", "Outbox full: ingest held (back-pressure)"),
    "task_failing": FaultSpec(Severity.CRITICAL, "平台后台任务故障", "A hub task is failing"),
    "outbox_near_full": FaultSpec(Severity.MAJOR, "缓存积压接近上限", "Outbox backlog near its cap"),
    "store_lost": FaultSpec(Severity.MAJOR, "数据库不可用，正在缓存", "Store unavailable: buffering in the outbox"),
}
"""The hub's own trouble (raised by hub.health.HealthWatch), titled like a device kind's fault table."""


class TransitionError(ValueError):
    """An action that does not fit the alert's state (e.g. acknowledging a resolved alert)."""


@dataclass(frozen=True, slots=True)
class Note:
    at_ms: int
    by: str
    action: str
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    site: str
    kind: str
    device: str
    code: str
    severity: Severity
    title: str
    title_en: str
    detail: str | None
    opened_ms: int
    state: State = "open"
    acknowledged_ms: int | None = None
    acknowledged_by: str | None = None
    resolved_ms: int | None = None
    resolved_by: str | None = None
    occurrences: int = 1
    escalated_ms: int | None = None
    notes: tuple[Note, ...] = field(default=())

    @property
    def key(self) -> tuple[str, str, str, str]:
        """One open alert per device and code."""
        return (self.site, self.kind, self.device, self.code)

    @property
    def opened_by(self) -> str:
        return self.notes[0].by if self.notes else "device"

    @property
    def active(self) -> bool:
        return self.state != "resolved"

    def to_json(self) -> dict[str, Any]:
        """The contract's payload (retained MQTT topic, webhooks, API), plus our additions."""
        return {
            "id": self.id, "site": self.site, "kind": self.kind, "device": self.device, "code": self.code,
            "severity": self.severity.value, "state": self.state, "opened_at": iso(self.opened_ms),
            "acknowledged_at": iso(self.acknowledged_ms), "resolved_at": iso(self.resolved_ms),
            "acknowledged_by": self.acknowledged_by, "title": self.title, "detail": self.detail,
            "title_en": self.title_en, "resolved_by": self.resolved_by, "occurrences": self.occurrences,
            "escalated_at": iso(self.escalated_ms),
            "notes": [{"at": iso(n.at_ms), "by": n.by, "action": n.action, "text": n.text} for n in self.notes],
        }


def new_id(now_ms: int) -> str:
    """Sortable by opening time, unique without coordination between hub copies."""
    return f"{now_ms:013d}-{secrets.token_hex(4)}"


def open_alert(site: str, kind: str, device: str, code: str, spec: FaultSpec, detail: str | None,
               now_ms: int, by: str = "device") -> Alert:
    """A new alert; `by` is "device" (a fault it reported), "hub" (offline) or "rule" (derived)."""
    return Alert(new_id(now_ms), site, kind, device, code, spec.severity, spec.zh, spec.en, detail, now_ms,
                 notes=(Note(now_ms, by, "opened", detail),))


def recur(alert: Alert, detail: str | None, now_ms: int) -> Alert:
    """The same fault again while its alert is active."""
    return replace(alert, occurrences=alert.occurrences + 1, detail=detail or alert.detail,
                   notes=(*alert.notes, Note(now_ms, "device", "recurred", detail)))


def escalate(alert: Alert, now_ms: int) -> Alert:
    """Nobody took a critical alert in time: mark it and tell the second line."""
    return replace(alert, escalated_ms=now_ms, notes=(*alert.notes, Note(now_ms, "hub", "escalated")))


def acknowledge(alert: Alert, by: str, note: str | None, now_ms: int) -> Alert:
    if alert.state != "open":
        raise TransitionError(f"alert {alert.id} is {alert.state}; only an open alert can be acknowledged")
    return replace(alert, state="acknowledged", acknowledged_ms=now_ms, acknowledged_by=by,
                   notes=(*alert.notes, Note(now_ms, by, "acknowledged", note)))


def resolve(alert: Alert, by: str, note: str | None, now_ms: int) -> Alert:
    if alert.state == "resolved":
        raise TransitionError(f"alert {alert.id} is already resolved")
    return replace(alert, state="resolved", resolved_ms=now_ms, resolved_by=by,
                   notes=(*alert.notes, Note(now_ms, by, "resolved", note)))
