"""Police (警务) read incidents and export their evidence, and nothing else: walked over the running app's whole
route table (every router, the controllers' and the adapters' routes, the WebSockets), not a list of paths."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import websockets
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from websockets.asyncio.client import connect

from hub.api import create_app
from hub.api.guard import route_access
from tests.support.hub_fixtures import HubRun, http_served

pytestmark = [pytest.mark.integration, pytest.mark.services]

POLICE_MAY = {
    ("GET", "/api/incidents"), ("GET", "/api/incidents/{incident_id}"), ("GET", "/api/incidents/{incident_id}/events"),
    ("GET", "/api/incidents/{incident_id}/evidence"), ("GET", "/api/incidents/{incident_id}/chain"),
    ("POST", "/api/incidents/{incident_id}/export"),
}
PUBLIC = {"/api/health", "/metrics", "/", "/m", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
"""What anyone may fetch without a token (probes, the pages that then ask for one, the API's description)."""


def flattened(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route the app serves, through the routers it includes."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from flattened(inner.routes)
        else:
            yield route


def filled(path: str) -> str:
    return re.sub(r"\{([a-z_]+)(:[a-z]+)?\}", lambda m: "sunshine" if m.group(1) == "site" else "x1", path)


async def test_police_may_read_incidents_and_exports_and_every_other_route_refuses_them(embedded_hub: HubRun) -> None:
    run = embedded_hub
    police = {"Authorization": f"Bearer {run.hub.users.add('王警官', 'police')}"}
    app = create_app(run.hub)
    routes = list(flattened(app.router.routes))
    seen_police_may, checked = set(), 0
    for route in routes:
        if isinstance(route, APIRoute | Route) and not isinstance(route, WebSocketRoute):
            for method in sorted(route.methods - {"HEAD"}):  # type: ignore[operator]
                response = await run.api.request(method, filled(route.path), headers=police,
                                                 json={} if method != "GET" else None)
                checked += 1
                if (method, route.path) in POLICE_MAY:
                    seen_police_may.add((method, route.path))
                    assert response.status_code not in (401, 403), (method, route.path, response.text)
                elif route.path in PUBLIC:
                    assert isinstance(route, Route) and route_access(route) is None, route.path
                else:
                    assert response.status_code in (401, 403), (method, route.path, response.status_code)
        elif isinstance(route, Mount):
            assert route.path == "/bigscreen"  # the page's script and style: public, no data
        else:
            assert isinstance(route, WebSocketRoute), route
    assert seen_police_may == POLICE_MAY, "every route police may use is served"
    assert checked > 30
    refused = (await run.api.get("/api/devices", headers=police)).json()["detail"]
    assert refused == "this needs the viewer role; 王警官 is police"


async def test_police_are_refused_the_live_stream_the_device_endpoints_and_the_screens(embedded_hub: HubRun) -> None:
    run = embedded_hub
    token = run.hub.users.add("王警官", "police")
    async with http_served(run) as port:
        with pytest.raises(websockets.exceptions.ConnectionClosed) as refused:
            async with connect(f"ws://127.0.0.1:{port}/api/live?token={token}") as ws:
                await ws.recv()
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 4403
        with pytest.raises(websockets.exceptions.InvalidStatus):  # a charger's Basic auth, not a person's token
            async with connect(f"ws://127.0.0.1:{port}/ocpp/sunshine/cp1", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                               additional_headers={"Authorization": f"Bearer {token}"}):
                pass
    me = await run.api.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 403
    roles = (await run.api.get("/api/catalog")).json()["roles"]  # how screens name the role (stored: police)
    assert roles["police"] == {"zh": "警务", "en": "Police"} and list(roles)[:4] == ["viewer", "maintenance",
                                                                                    "operator", "admin"]
