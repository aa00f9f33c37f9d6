"""In-process events: what the hub announces, and the handlers that hear it, each on its own.

A component announces a typed event (`AlertChanged`, `OrderChanged`, `PointsRejected`) instead of
calling its neighbours in a row, so one receiver's bug never keeps the next from running: a handler
that raises is logged with its name and traceback (the first per interval, `hub.ratelog`), counted
per (event, handler) for `smarthub_handler_errors_total`, and the other handlers still run.

`MessageAccepted` is the one event per message: its handlers are called as `handler(msg, state)`,
straight from the pipeline's own loop over `Events.message_calls` (bare callables, no names, no event
object), so the hot path costs what a plain loop of calls costs; a name is looked up only on failure.
Handlers run synchronously, in the order registered; one with slow work queues it (notifier, live bus).

Runtime imports are the standard library and `hub.ratelog` only: the storage layer can announce
`PointsRejected` without depending on ingest, alerts or the API.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from hub.ratelog import RateGate

if TYPE_CHECKING:
    from devices.base import Accepted
    from hub.alerts.models import Alert
    from hub.alerts.orders import WorkOrder
    from hub.incidents.merge import Incident
    from hub.state import DeviceState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MessageAccepted:
    """A message passed every check; its live state is already updated. Handlers take `(msg, state)`."""

    msg: Accepted
    state: DeviceState


@dataclass(frozen=True, slots=True)
class AlertChanged:
    """A new version of an alert: opened, recurred, acknowledged, escalated or resolved."""

    alert: Alert


@dataclass(frozen=True, slots=True)
class OrderChanged:
    """A new version of a work order: opened, dispatched, arrived, escalated or closed."""

    order: WorkOrder


@dataclass(frozen=True, slots=True)
class IncidentChanged:
    """A new version of an incident: opened, a part joined, or one of its alerts or orders moved."""

    incident: Incident


@dataclass(frozen=True, slots=True)
class PointsRejected:
    """The store refused these bodies for good (retrying cannot help); `reason` is the store's word.

    The bodies are in the store's wire format, as sent (line protocol for InfluxDB)."""

    bodies: tuple[bytes, ...]
    reason: str


E = TypeVar("E")
MessageHandler = Callable[["Accepted", "DeviceState"], None]


class Events:
    """Handlers by event type, each registered under a name that the log and the counter use."""

    def __init__(self, log_gate: RateGate | None = None) -> None:
        self.message_handlers: list[tuple[str, MessageHandler]] = []
        """`MessageAccepted` handlers with their names, in calling order."""
        self.message_calls: list[MessageHandler] = []
        """The same handlers without names: what the pipeline loops over itself (the hot path)."""
        self._handlers: dict[type, list[tuple[str, Callable[[Any], None]]]] = {}
        self.errors: Counter[tuple[str, str]] = Counter()
        """(event name, handler name) -> exceptions raised; `hub.metrics` exposes them."""
        self._log_gate = log_gate or RateGate()

    def on(self, event_type: type[E], name: str, handler: Callable[[E], None], *, before: str | None = None) -> None:
        """Call `handler(event)` for every `event_type` announced from now on (not `MessageAccepted`).

        Handlers run in the order registered; `before` puts this one ahead of the handler of that name."""
        if event_type is MessageAccepted:
            raise TypeError("MessageAccepted handlers take (msg, state): register them with on_message")
        handlers = self._handlers.setdefault(event_type, [])
        names = [n for n, _ in handlers]
        if name in names:
            raise ValueError(f"a {event_type.__name__} handler named {name!r} is registered already")
        if before is not None and before not in names:
            raise ValueError(f"no {event_type.__name__} handler named {before!r} to go before")
        handlers.insert(names.index(before) if before is not None else len(handlers), (name, handler))

    def on_message(self, name: str, handler: MessageHandler) -> None:
        """Call `handler(msg, state)` for every accepted message."""
        if any(n == name for n, _ in self.message_handlers):
            raise ValueError(f"a MessageAccepted handler named {name!r} is registered already")
        self.message_handlers.append((name, handler))
        self.message_calls.append(handler)

    def name_of(self, handler: MessageHandler) -> str:
        """The name a `MessageAccepted` handler was registered under (looked up when it fails)."""
        return next((n for n, h in self.message_handlers if h is handler), repr(handler))

    def handlers(self, event_type: type) -> list[str]:
        """The names of the handlers of `event_type`, in calling order."""
        pairs = self.message_handlers if event_type is MessageAccepted else self._handlers.get(event_type, [])
        return [name for name, _ in pairs]

    def emit(self, event: object) -> bool:
        """Call every handler of the event's type; one that raises is logged and counted, the rest still run.

        True when none raised: a sender that must not forget what nobody kept (the outbox writer) checks it."""
        ok = True
        if isinstance(event, MessageAccepted):
            for name, handler in self.message_handlers:
                try:
                    handler(event.msg, event.state)
                except Exception as exc:  # noqa: BLE001 - one handler's bug must not stop the others
                    self.failed("MessageAccepted", name, exc)
                    ok = False
            return ok
        for name, handler in self._handlers.get(type(event), ()):
            try:
                handler(event)
            except Exception as exc:  # noqa: BLE001 - one handler's bug must not stop the others
                self.failed(type(event).__name__, name, exc)
                ok = False
        return ok

    def failed(self, event: str, handler: str, exc: BaseException, context: str = "") -> None:
        """Count a handler's exception, and log it with its traceback unless that pair logged one lately."""
        key = (event, handler)
        self.errors[key] += 1
        write, held = self._log_gate.admit(key)
        if write:
            more = f" ({held.count:,} more failures in the last {held.seconds:.0f} s)" if held else ""
            where = f" on {context}" if context else ""
            log.error("%s handler %r failed%s%s", event, handler, where, more, exc_info=exc)

    def report(self) -> None:
        """Log how many failures were held back in intervals that are over (called each second)."""
        for held in self._log_gate.due():
            event, handler = held.key  # type: ignore[misc]
            log.error("%s handler %r failed %s more times in the last %.0f s", event, handler,
                      f"{held.count:,}", held.seconds)
