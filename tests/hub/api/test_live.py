"""WS /api/live: a screen gets events, alert changes and device updates as they happen."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from websockets.asyncio.client import connect

from tests.support.hub_fixtures import ADMIN_TOKEN, HubRun, eventually
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.services]


async def test_live_stream_and_its_token(embedded_hub: HubRun) -> None:
    run = embedded_hub
    port = free_port()
    server = run.hub.http_server("127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, what="the HTTP server")
    try:
        with pytest.raises(websockets.exceptions.ConnectionClosed) as refused:
            async with connect(f"ws://127.0.0.1:{port}/api/live?token=wrong") as ws:
                await ws.recv()
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 4401

        async with connect(f"ws://127.0.0.1:{port}/api/live?token={ADMIN_TOKEN}") as ws:
            await run.publish(run.topic("elevator", "b1-el1", "event"),
                              {"type": "fault", "code": "trapped_passenger", "active": True, "id": "x1"})
            seen: dict[str, dict] = {}  # type: ignore[type-arg]
            async with asyncio.timeout(5):
                while not {"event", "alert", "order", "devices"} <= set(seen):
                    message = json.loads(await ws.recv())
                    seen.setdefault(message["type"], message)
            event = seen["event"]["event"]
            assert (event["type"], event["code"], event["device"]) == ("fault", "trapped_passenger", "b1-el1")
            assert seen["alert"]["alert"]["severity"] == "critical"
            assert seen["order"]["order"]["team"] == "elevator-maintenance"  # a trapped passenger opens an order
            [device] = seen["devices"]["devices"]
            assert device["device"] == "b1-el1" and device["open_faults"] == ["trapped_passenger"]
    finally:
        server.should_exit = True
        await serving
