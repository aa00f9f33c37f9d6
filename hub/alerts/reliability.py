"""Elevator (or any device) reliability from alert history: failures, MTTR, MTBF, availability.

Pure arithmetic over alerts in a window. A failure is a device fault alert of
major or critical severity (offline excluded, and the codes a kind declares no failure of its
device: `DeviceKind.not_failures`, a maintenance hint or a power-sharing alert, say);
downtime is the union of the time such alerts were active, clipped to the
window. Availability is the share of the window without an active failure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from devices import REGISTRY
from devices.base import Severity
from hub.alerts.models import Alert

NOT_FAILURES = frozenset({"offline"})
"""Codes no kind's alert counts as a failure; each kind adds its own (`DeviceKind.not_failures`)."""


@dataclass(frozen=True, slots=True)
class Reliability:
    failures: int
    downtime_s: float
    mttr_s: float | None
    mtbf_s: float | None
    availability: float


def is_failure(alert: Alert) -> bool:
    """A major or critical alert about the device itself (its kind looked up now: plug-ins register late)."""
    kind = REGISTRY.get(alert.kind)
    excluded = alert.code in NOT_FAILURES or (kind is not None and alert.code in kind.not_failures)
    return not excluded and alert.severity in (Severity.CRITICAL, Severity.MAJOR)


def measure(alerts: Iterable[Alert], start_ms: int, end_ms: int) -> Reliability:
    """Reliability of one device (or a pool of devices, summed) over [start_ms, end_ms)."""
    relevant = [a for a in alerts
                if is_failure(a) and a.opened_ms < end_ms and (a.resolved_ms or end_ms) > start_ms]
    failures = sum(1 for a in relevant if a.opened_ms >= start_ms)
    repaired = [a.resolved_ms - a.opened_ms for a in relevant if a.resolved_ms is not None and a.resolved_ms < end_ms]
    spans = sorted((max(a.opened_ms, start_ms), min(a.resolved_ms or end_ms, end_ms)) for a in relevant)
    downtime = 0
    cursor = start_ms
    for s, e in spans:  # union of overlapping spans
        s = max(s, cursor)
        if e > s:
            downtime += e - s
            cursor = e
    window = end_ms - start_ms
    return Reliability(
        failures=failures,
        downtime_s=downtime / 1000,
        mttr_s=sum(repaired) / len(repaired) / 1000 if repaired else None,
        mtbf_s=(window - downtime) / failures / 1000 if failures else None,
        availability=round(1 - downtime / window, 6) if window > 0 else 1.0,
    )


def by_device(alerts: Iterable[Alert], start_ms: int, end_ms: int) -> dict[tuple[str, str, str], Reliability]:
    grouped: dict[tuple[str, str, str], list[Alert]] = defaultdict(list)
    for alert in alerts:
        grouped[(alert.site, alert.kind, alert.device)].append(alert)
    return {key: measure(group, start_ms, end_ms) for key, group in grouped.items()}
