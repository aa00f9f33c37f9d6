"""Derived alerts: what a person should look at even when no device reported a fault.

Rules are pure functions of one accepted message, the device's live state and
the time; they return intents (raise, clear, or raise at a deadline unless
cleared first), and the alert engine owns the alerts and the clock. Their
thresholds are the kind's settings (`devices.base.KindSettings`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from devices.base import Accepted


@dataclass(frozen=True, slots=True)
class Raise:
    code: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Clear:
    code: str


@dataclass(frozen=True, slots=True)
class Deadline:
    """Raise `code` at `at_ms` unless a Clear for it comes first."""

    code: str
    at_ms: int
    detail: str | None = None


Intent = Raise | Clear | Deadline
Rule = Callable[[Accepted, Mapping[str, Any], dict[str, Any], int, Any], Iterable[Intent]]
"""(message, live telemetry, the rule's scratch memory for this device, now ms, the kind's settings) -> intents

Each kind keeps its rules, the codes only they raise and their thresholds (a `KindSettings` model) in its own
module (`devices/<kind>.py`); this module holds what they share."""

