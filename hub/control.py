"""Controllers: a kind's own loops that act on a whole site (orderly charging, say), run by the hub.

A kind lists factories in `DeviceKind.controllers`; the hub makes one controller of each, runs its
`run(ctx)` under the supervisor (restarted if it fails), hands it every accepted message when it has an
`on_message(msg, state)`, and serves its `routes()` (FastAPI routers) when it has some. The hub never learns
what a controller controls: it only gives each the small `ControlContext` below.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from devices.base import DeviceKind, KindSettings
from hub.alerts.engine import AlertEngine
from hub.audit import AuditLog
from hub.commands import Commands
from hub.registry import Registry
from hub.state import LiveState

log = logging.getLogger(__name__)

HUB_USER = "hub"
"""Who the audit log says acted when a controller commands a device: the hub itself."""
COMMAND_ACTION = "control.command"


@runtime_checkable
class Controller(Protocol):
    name: str

    async def run(self, ctx: ControlContext) -> None:
        """Control until cancelled."""
        ...


@dataclass(frozen=True)
class ControlContext:
    """What a controller may use: live state and registry to read, commands (audited as the hub's own),
    derived alerts of its kind to raise and clear, its kind's settings, and the clock (ms)."""

    kind: str
    live: LiveState
    registry: Registry
    settings: KindSettings
    commands: Commands
    audit: AuditLog
    alerts: AlertEngine
    clock: Callable[[], int]

    async def send_command(self, site: str, kind: str, device: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """The device's reply, the attempt audited as the hub's action; a timeout or a broker failure gives
        a reply with ok false (a controller tries again on its next round rather than failing)."""
        target = f"{site}/{kind}/{device}"
        detail: dict[str, Any] = {"op": op, "args": args}
        try:
            reply = await self.commands.send(site, kind, device, op, args)
        except TimeoutError:
            reply = {"ok": False, "error": f"no reply within {self.commands.timeout_s:.0f} s"}
        except Exception as exc:  # noqa: BLE001 - the broker is away; the next round tries again
            log.warning("controller command %s %s failed: %s: %s", target, op, type(exc).__name__, str(exc)[:300])
            reply = {"ok": False, "error": "the broker cannot be reached"}
        self.audit.record(HUB_USER, HUB_USER, COMMAND_ACTION, target, "ok" if reply.get("ok") else "failed",
                          {**detail, "reply": reply})
        return reply

    def raise_alert(self, site: str, device: str, code: str, detail: str | None) -> None:
        """Open (once) the derived alert `code` of this controller's kind on one of its devices."""
        self.alerts.raise_derived(site, self.kind, device, code, detail)

    def clear_alert(self, site: str, device: str, code: str) -> None:
        self.alerts.clear_derived(site, self.kind, device, code)


def wall_ms() -> int:
    return int(time.time() * 1000)


def make(kinds: Mapping[str, DeviceKind]) -> list[tuple[str, Controller]]:
    """(kind, controller) for every controller the kinds declare; names must be unique."""
    out: list[tuple[str, Controller]] = []
    for name, kind in kinds.items():
        for factory in kind.controllers:
            controller = factory()
            if any(c.name == controller.name for _, c in out):
                raise ValueError(f"two controllers are named {controller.name!r}")
            out.append((name, controller))
    return out


def routers(controllers: Sequence[tuple[str, Controller]]) -> list[Any]:
    """The FastAPI routers the controllers serve."""
    return [r for _, c in controllers if callable(routes := getattr(c, "routes", None)) for r in routes()]


Runner = Callable[[], Awaitable[None]]
