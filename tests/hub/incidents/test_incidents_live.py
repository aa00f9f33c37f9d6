"""A running hub merges a forced door, the cameras that see it and its lane into one incident: on the API
(with the stored events one click away) and on WS /api/live."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from hub.config import Settings
from tests.support.hub_fixtures import ADMIN_TOKEN, HubRun, eventually, running_hub
from tests.support.mqtt_fixtures import Broker
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.services]

REGISTRY = """
[[devices]]
site = "sunshine"
kind = "access"
device = "door-3"
place = "east-entrance"

[[devices]]
site = "sunshine"
kind = "camera"
device = "cam-1"
sees = ["door-3"]

[[devices]]
site = "sunshine"
kind = "camera"
device = "cam-2"
sees = ["east-entrance"]

[[devices]]
site = "sunshine"
kind = "gate"
device = "lane-2"
place = "east-entrance"

[[devices]]
site = "sunshine"
kind = "camera"
device = "cam-9"
sees = ["door-7"]
"""


def detection(event_id: str) -> dict[str, Any]:
    return {"type": "detection", "label": "person", "phase": "start", "score": 0.9, "id": event_id}


PASSAGE = {"type": "passage", "plate": "琼A12345", "plate_color": "blue", "direction": "in", "lane": "2",
           "vehicle_class": "car", "confidence": 0.97, "decision": "allowed", "category": "resident", "id": "p1"}


async def test_a_forced_door_seen_by_cameras_is_one_incident_not_four_items(
        settings_for: Callable[..., Settings], mosquitto: Broker, tmp_path: Path) -> None:
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY, encoding="utf-8")
    async with running_hub(settings_for("embedded", registry=registry), mosquitto) as run:
        await _forced_door(run)


async def _forced_door(run: HubRun) -> None:
    port = free_port()
    server = run.hub.http_server("127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, what="the HTTP server")
    try:
        viewer_token = run.hub.users.add("wall-viewer", "viewer")
        async with connect(f"ws://127.0.0.1:{port}/api/live?token={ADMIN_TOKEN}") as ws, \
                connect(f"ws://127.0.0.1:{port}/api/live?token={viewer_token}") as viewer_ws:
            await run.publish(run.topic("access", "door-3", "event"),
                              {"type": "fault", "code": "door_forced", "active": True, "id": "f1"})
            await eventually(lambda: run.hub.incidents.active, what="the incident to open")
            await run.publish_many([
                (run.topic("camera", "cam-1", "event"), detection("d1")),
                (run.topic("camera", "cam-2", "event"), detection("d2")),
                (run.topic("gate", "lane-2", "event"), PASSAGE),
                (run.topic("camera", "cam-9", "event"), detection("d9")),  # sees another door: not part of it
            ])

            async def one_incident() -> list[dict[str, Any]] | None:
                response = await run.api.get("/api/incidents", params={"state": "open", "site": "sunshine"})
                assert response.status_code == 200, response.text
                found = response.json()
                return found if found and len(found[0]["parts"]) == 4 else None

            [incident] = await eventually(one_incident, what="four parts in one incident")
            assert incident["severity"] == "critical" and incident["title_en"] == "Door forced open"
            assert sorted(incident["events"]) == ["d1", "d2", "p1"] and len(incident["alerts"]) == 1
            assert [e["action"] for e in incident["timeline"]].count("event") == 3

            last: dict[str, Any] = {}
            async with asyncio.timeout(5):
                while len(last.get("parts", ())) < 4:
                    message = json.loads(await ws.recv())
                    if message["type"] == "incident":
                        last = message["incident"]
            assert last["id"] == incident["id"]
            assert "琼A12345" in json.dumps(last, ensure_ascii=False)
            shown: dict[str, Any] = {}
            async with asyncio.timeout(5):
                while len(shown.get("parts", ())) < 4:
                    message = json.loads(await viewer_ws.recv())
                    if message["type"] == "incident":
                        shown = message["incident"]
            text = json.dumps(shown, ensure_ascii=False)
            assert "琼A12345" not in text and "琼A·1***5" in text  # masked for a viewer, as events are

        await run.stored()
        raw = await run.api.get(f"/api/incidents/{incident['id']}/events")
        assert raw.status_code == 200, raw.text
        assert sorted(r["id"] for r in raw.json()) == ["d1", "d2", "p1"]
        assert "琼A12345" in raw.text and "琼A12345" in str(incident)  # an admin sees the whole plate

        viewer = {"Authorization": f"Bearer {run.hub.users.add('v', 'viewer')}"}
        for path in ("/api/incidents", f"/api/incidents/{incident['id']}", f"/api/incidents/{incident['id']}/events"):
            seen_by_viewer = await run.api.get(path, headers=viewer)
            assert seen_by_viewer.status_code == 200 and "琼A12345" not in seen_by_viewer.text, path
            assert "琼A·1***5" in seen_by_viewer.text, path

        alert_id = incident["alerts"][0]
        acked = await run.api.post(f"/api/alerts/{alert_id}/ack", json={"note": "on my way"})
        assert acked.status_code == 200, acked.text
        detail = (await run.api.get(f"/api/incidents/{incident['id']}")).json()
        assert detail["state"] == "acknowledged" and detail["people"] == ["admin"]
        assert (await run.api.get("/api/incidents/nope")).status_code == 404
    finally:
        server.should_exit = True
        await serving
