"""How much the hub remembers of what it committed, to recognise what the broker or a device sends again.

Shared by the side that checks (`hub.ingest.redelivery`) and the side that keeps the keys on disk, in the
same transaction as the points (`hub.storage.outbox`), so neither imports the other.
"""

from __future__ import annotations

DELIVERIES_KEPT = 262_144
"""Far more than can be in flight: Mosquitto's max_inflight_messages, MQTT 5's receive maximum (65,535)."""
EVENT_KEYS_KEPT_MS = 24 * 3600 * 1000
"""How long an event id is remembered: a device's own retry or a broker replaying its queue comes sooner."""
