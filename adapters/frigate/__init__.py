"""Frigate NVR detections as `camera` devices: `mapping` (pure) and `intake` (the edge on the hub's MQTT link)."""

from __future__ import annotations

from adapters.frigate.intake import FrigateAdapter

ADAPTER = FrigateAdapter()
