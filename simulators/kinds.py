"""Simulated kinds, registered in one place: a community is built by iterating this, never by naming kinds."""

from __future__ import annotations

from simulators import access, camera, charger, elevator, gate, meter
from simulators.base import SimKind

SIMULATORS: dict[str, SimKind] = {
    s.name: s for s in (access.SIM, camera.SIM, charger.SIM, elevator.SIM, gate.SIM, meter.SIM)
}
