"""OCPP 1.6J chargers as `charger` devices: `mapping` (pure) and `central` (the WebSocket edge)."""

from __future__ import annotations

from adapters.ocpp.central import OcppAdapter

ADAPTER = OcppAdapter()
