"""A running hub forgets its incidents' plates with the stored passages, at the retention the settings give,
by a clock the test moves (`Hub.forget_personal_data(now_ms)`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hub.config import Settings
from tests.support.hub_fixtures import eventually, running_hub
from tests.support.mqtt_fixtures import Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]

REGISTRY = """
[[devices]]
site = "sunshine"
kind = "access"
device = "door-3"
place = "east-entrance"

[[devices]]
site = "sunshine"
kind = "gate"
device = "lane-2"
place = "east-entrance"
"""
PASSAGE = {"type": "passage", "plate": "琼A12345", "plate_color": "blue", "direction": "in", "lane": "2",
           "vehicle_class": "car", "confidence": 0.97, "decision": "allowed", "category": "resident", "id": "p1"}
DAY_MS = 86_400_000


async def test_an_incidents_plate_is_forgotten_after_the_retention_and_the_incident_stays(
        settings_for: Callable[..., Settings], mosquitto: Broker, tmp_path: Path) -> None:
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY, encoding="utf-8")
    async with running_hub(settings_for("embedded", registry=registry, personal_retention_days=30), mosquitto) as run:
        await run.publish(run.topic("access", "door-3", "event"), {"type": "fault", "code": "door_forced",
                                                                   "active": True})
        await eventually(lambda: run.hub.incidents.active, what="the incident")
        await run.publish(run.topic("gate", "lane-2", "event"), PASSAGE)

        async def with_the_passage() -> str | None:
            found = (await run.api.get("/api/incidents")).json()
            return found[0]["id"] if found and "p1" in found[0]["events"] else None

        incident_id = await eventually(with_the_passage, what="the passage in the incident")
        await run.stored()
        now_ms = int(time.time() * 1000)
        await run.hub.forget_personal_data(now_ms=now_ms + 29 * DAY_MS)  # within retention: kept
        assert "琼A12345" in (await run.api.get(f"/api/incidents/{incident_id}")).text

        await run.hub.forget_personal_data(now_ms=now_ms + 31 * DAY_MS)
        kept = (await run.api.get(f"/api/incidents/{incident_id}")).json()
        assert "琼A12345" not in str(kept) and kept["events"] == ["p1"] and len(kept["alerts"]) == 1
        [part] = [p for p in kept["parts"] if p["source"] == "event"]
        assert part["fields"]["forgotten"] is True and part["fields"]["direction"] == "in"
        assert (await run.api.get(f"/api/incidents/{incident_id}/events")).json() == []  # the stored one went too
        resolved = await run.api.post(f"/api/incidents/{incident_id}/resolve", json={})  # a later change keeps it so
        assert resolved.status_code == 200 and "琼A12345" not in resolved.text
