"""A running hub against the real broker and a real store, plus helpers to drive it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from hub.api import create_app
from hub.app import Hub
from hub.config import Settings
from tests.support.mqtt_fixtures import Broker, publish_many

ADMIN_TOKEN = "test-admin-token"


async def eventually(check: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Await until `check()` (sync or async) returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if isinstance(last, Awaitable):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


@dataclass
class HubRun:
    hub: Hub
    api: httpx.AsyncClient
    broker: Broker
    root: str
    site: str = "sunshine"

    def topic(self, kind: str, device: str, channel: str, site: str | None = None) -> str:
        return f"{self.root}/{site or self.site}/{kind}/{device}/{channel}"

    async def publish(self, topic: str, payload: Any, qos: int = 1, retain: bool = False) -> None:
        body = payload if isinstance(payload, bytes | str) else orjson.dumps(payload)
        await asyncio.to_thread(publish_many, [(topic, body)], self.broker, qos, retain)

    async def publish_many(self, messages: list[tuple[str, Any]], qos: int = 1) -> None:
        encoded = [(t, p if isinstance(p, bytes | str) else orjson.dumps(p)) for t, p in messages]
        await asyncio.to_thread(publish_many, encoded, self.broker, qos)

    async def events(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.api.get("/api/events", params=params)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def stored(self) -> None:
        """Wait until everything received so far is in the store (pipeline and outbox empty)."""
        self.hub.pipeline.flush()
        await eventually(lambda: self.hub.outbox.depth == 0 and self.hub.pipeline.pending == 0,
                         what="outbox to drain")


def hub_settings(broker: Broker, root: str, data_dir: Path, influx_url: str | None = None, **extra: Any) -> Settings:
    return Settings(
        mqtt_url=broker.url(),
        mqtt_client_id=f"hub-{root}",
        root=root,
        data_dir=data_dir,
        influx_url=influx_url,
        influx_db=f"db_{root}",
        admin_token=ADMIN_TOKEN,
        **extra,
    )


@asynccontextmanager
async def http_served(run: HubRun) -> AsyncIterator[int]:
    """The hub's own HTTP server (API, WebSockets, adapters' routes) on a free port, for clients that need a
    real socket (WebSocket, OCPP); yields the port."""
    from tests.support.processes import free_port

    port = free_port()
    server = run.hub.http_server("127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, what="the HTTP server")
    try:
        yield port
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def running_hub(settings: Settings, broker: Broker) -> AsyncIterator[HubRun]:
    """Start a hub, wait until it is subscribed, and give an authenticated API client."""
    async with Hub(settings) as hub:
        await eventually(lambda: hub.mqtt.connected, timeout=10, what="hub to connect to MQTT")
        transport = httpx.ASGITransport(app=create_app(hub))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hub", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as api:
            yield HubRun(hub, api, broker, settings.root)


@pytest.fixture(params=["embedded", "influx"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings_for(
    mosquitto: Broker, root: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[..., Settings]:
    """Settings for a hub on the test broker; `backend="influx"` uses the session's real InfluxDB."""

    def make(backend: str = "embedded", **extra: Any) -> Settings:
        influx_url = request.getfixturevalue("influxd") if backend == "influx" else None
        return hub_settings(mosquitto, root, tmp_path / "data", influx_url, **extra)

    return make


@pytest.fixture
async def hub_run(settings_for: Callable[..., Settings], mosquitto: Broker, backend: str) -> AsyncIterator[HubRun]:
    async with running_hub(settings_for(backend), mosquitto) as run:
        yield run


@pytest.fixture
async def embedded_hub(settings_for: Callable[..., Settings], mosquitto: Broker) -> AsyncIterator[HubRun]:
    async with running_hub(settings_for("embedded"), mosquitto) as run:
        yield run


async def seed_examples(run: HubRun) -> None:
    """Every kind's example telemetry and events, from one device per kind, stored; their faults open alerts.

    So reads answer with real rows of every shape, not empty lists."""
    from devices import REGISTRY

    messages = [(run.topic(name, f"{name}-x1", channel), example) for name, kind in sorted(REGISTRY.items())
                for channel, examples in kind.examples.items() for example in examples]
    await run.publish_many(messages)
    await eventually(lambda: run.hub.pipeline.stats.received >= len(messages), what="the examples to arrive")
    await run.stored()
    await eventually(lambda: run.hub.alert_store.find(10), what="an alert from the example faults")
