"""The HTTP API (contract section 6): an app factory over a running Hub, serving the routers of `hub.api.routes`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from dashboards import BIGSCREEN
from hub import adapters, control
from hub.api.guard import RequestGuard
from hub.api.routes import ROUTERS

if TYPE_CHECKING:
    from hub.app import Hub


def create_app(hub: Hub) -> FastAPI:
    """A FastAPI app serving `hub`; the hub's lifetime is managed by the caller."""
    app = FastAPI(
        title="smarthub",
        summary="Smart-community IoT hub: devices, events and live state of a 小区",
        version="0.1.0",
    )
    app.state.hub = hub
    loaded = adapters.load(hub.settings.adapter_modules)
    larger = {prefix: limit for adapter in loaded for prefix, limit in getattr(adapter, "body_limits", {}).items()}
    app.add_middleware(RequestGuard, max_body=hub.settings.api_max_body_bytes,  # token and size before the body
                       larger=larger)
    for router in ROUTERS:
        app.include_router(router)
    # An adapter's routes (a protocol's WebSocket endpoint, a vendor's push) go first: the router tries routes in
    # order, and a device posting many times a second should not pay for matching every API route first (about
    # 60 patterns, a fifth of a Hikvision post's CPU). Their paths are their own (/ocpp/, /push/): none shadowed.
    app.router.routes[:0] = [route for adapter in loaded for route in adapter.routes(hub)]
    for router in control.routers(getattr(hub, "controllers", ())):  # a controller's own view (what it decided and why)
        app.include_router(router)
    app.mount("/bigscreen", StaticFiles(directory=BIGSCREEN), name="bigscreen")  # the page's script, style, ECharts
    return app
