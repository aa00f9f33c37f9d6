"""Device kinds, registered in one place. The hub only ever looks kinds up here."""

from __future__ import annotations

from devices import access, camera, charger, elevator, gate, meter
from devices.base import DeviceKind

REGISTRY: dict[str, DeviceKind] = {
    k.name: k for k in (access.KIND, camera.KIND, charger.KIND, elevator.KIND, gate.KIND, meter.KIND)
}

__all__ = ["REGISTRY", "DeviceKind"]
