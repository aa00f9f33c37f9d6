"""Device kinds, registered in one place. The hub only ever looks kinds up here.

A kind is one module (`devices/<kind>.py`) that builds a `DeviceKind`; `register` adds one more at run
time (a plug-in, or a test's own kind) before the hub is built.
"""

from __future__ import annotations

from devices import access, camera, charger, elevator, gate, meter
from devices.base import DeviceKind

REGISTRY: dict[str, DeviceKind] = {
    k.name: k for k in (access.KIND, camera.KIND, charger.KIND, elevator.KIND, gate.KIND, meter.KIND)
}


def register(kind: DeviceKind) -> None:
    """Add a kind; a name already taken is an error, not a replacement. Its thresholds are hub settings only
    when registered before `hub.config` is imported; otherwise they keep their defaults."""
    if kind.name in REGISTRY:
        raise ValueError(f"kind {kind.name!r} is already registered")
    REGISTRY[kind.name] = kind


def unregister(name: str) -> None:
    """Remove a kind added with `register` (tests clean up with it)."""
    REGISTRY.pop(name, None)


__all__ = ["REGISTRY", "DeviceKind", "register", "unregister"]
