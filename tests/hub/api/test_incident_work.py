"""POST /api/incidents/{id}/ack and /resolve through a running hub and a real Mosquitto: the incident's alerts and
work order move with it, its people and timeline say who worked it, the audit log has it, WS /api/live shows it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from hub.config import Settings
from tests.support.hub_fixtures import ADMIN_TOKEN, HubRun, eventually, http_served, running_hub
from tests.support.mqtt_fixtures import Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]

REGISTRY = """
[[devices]]
site = "sunshine"
kind = "access"
device = "door-3"

[[devices]]
site = "sunshine"
kind = "camera"
device = "cam-1"
sees = ["door-3"]
"""


async def incident_pushed(ws: ClientConnection, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first incident on the live stream that passes `check`."""
    async with asyncio.timeout(5):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "incident" and check(message["incident"]):
                return message["incident"]  # type: ignore[no-any-return]


async def test_an_incident_is_acknowledged_and_resolved_as_a_whole(
        settings_for: Callable[..., Settings], mosquitto: Broker, tmp_path: Path) -> None:
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY, encoding="utf-8")
    async with running_hub(settings_for("embedded", registry=registry), mosquitto) as run:
        await _worked_as_a_whole(run)


async def _worked_as_a_whole(run: HubRun) -> None:
    guard = {"Authorization": f"Bearer {run.hub.users.add('王保安', 'maintenance')}"}
    fixer = {"Authorization": f"Bearer {run.hub.users.add('李师傅', 'maintenance')}"}
    viewer = {"Authorization": f"Bearer {run.hub.users.add('wall', 'viewer')}"}
    await run.publish(run.topic("access", "door-3", "event"), {"type": "fault", "code": "door_forced", "active": True})
    await run.publish(run.topic("camera", "cam-1", "event"), {"type": "fault", "code": "tamper", "active": True})

    async def two_alerts_and_the_order() -> dict[str, Any] | None:
        found = (await run.api.get("/api/incidents", params={"site": "sunshine"})).json()
        return found[0] if len(found) == 1 and len(found[0]["alerts"]) == 2 and found[0]["orders"] else None

    incident = await eventually(two_alerts_and_the_order, what="one incident of two alerts with its work order")
    url = f"/api/incidents/{incident['id']}"
    [order_id] = incident["orders"]
    assert (await run.api.post(f"{url}/ack", json={}, headers=viewer)).status_code == 403

    async with http_served(run) as port, connect(f"ws://127.0.0.1:{port}/api/live?token={ADMIN_TOKEN}") as ws:
        acked = await run.api.post(f"{url}/ack", json={"note": "on my way", "by": "someone else"}, headers=guard)
        assert acked.status_code == 200, acked.text
        body = acked.json()
        assert body["state"] == "acknowledged" and body["people"] == ["王保安"]
        assert body["timeline"][-1] | {"at": None} == {"at": None, "by": "王保安", "action": "incident acknowledged",
                                                        "ref": incident["id"], "text": "on my way"}
        pushed = await incident_pushed(ws, lambda i: i["timeline"][-1]["action"] == "incident acknowledged")
        assert pushed["state"] == "acknowledged" and pushed["people"] == ["王保安"]
        alerts = (await run.api.get("/api/alerts", params={"site": "sunshine"})).json()
        assert {(a["state"], a["acknowledged_by"]) for a in alerts} == {("acknowledged", "王保安")}
        again = await run.api.post(f"{url}/ack", json={}, headers=fixer)
        assert again.status_code == 409 and "no open alert" in again.text

        done = await run.api.post(f"{url}/resolve", json={"note": "door repaired"}, headers=fixer)
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["state"] == "resolved" and body["people"] == ["王保安", "李师傅"]
        assert [e["action"] for e in body["timeline"]].count("alert resolved") == 2
        assert body["timeline"][-1]["action"] == "incident resolved"
        pushed = await incident_pushed(ws, lambda i: i["timeline"][-1]["action"] == "incident resolved")
        assert pushed["state"] == "resolved"

    [order] = [o for o in (await run.api.get("/api/orders")).json() if o["id"] == order_id]
    assert order["state"] == "resolved" and order["notes"][-1]["by"] == "李师傅"
    alerts = (await run.api.get("/api/alerts", params={"site": "sunshine"})).json()
    assert {(a["state"], a["resolved_by"]) for a in alerts} == {("resolved", "李师傅")}
    assert not run.hub.incidents.active
    assert (await run.api.post(f"{url}/resolve", json={}, headers=fixer)).status_code == 409
    assert (await run.api.post("/api/incidents/nope/ack", json={}, headers=fixer)).status_code == 404
    trail = [a for a in (await run.api.get("/api/audit")).json() if a["action"].startswith("incident.")]
    assert [(a["user"], a["action"], a["target"], a["outcome"]) for a in reversed(trail)] == [  # a 403 runs nothing
        ("王保安", "incident.ack", incident["id"], "ok"),
        ("李师傅", "incident.ack", incident["id"], "refused 409"),
        ("李师傅", "incident.resolve", incident["id"], "ok"),
        ("李师傅", "incident.resolve", incident["id"], "refused 409"),
        ("李师傅", "incident.ack", "nope", "refused 404")]
    assert trail[-1]["detail"] == {"note": "on my way", "by": "someone else"}  # as given; who acted is the token's
