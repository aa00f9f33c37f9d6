"""The HTTP API (contract section 6): an app factory over a running Hub, one router per resource."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from dashboards import BIGSCREEN
from hub import adapters
from hub.api import (
    alerts,
    audit,
    commands,
    deadletters,
    devices,
    events,
    health,
    live,
    orders,
    overview,
    pages,
    screen,
    series,
    users,
)
from hub.api.guard import RequestGuard

if TYPE_CHECKING:
    from hub.app import Hub

ROUTERS: tuple[APIRouter, ...] = (
    health.router, pages.router, devices.router, events.router, deadletters.router, alerts.router, live.router,
    orders.router, commands.router, audit.router, users.router, series.router, overview.router, screen.router,
)
"""Every router the app serves, in one place (the OpenAPI tests walk the same tuple)."""


def create_app(hub: Hub) -> FastAPI:
    """A FastAPI app serving `hub`; the hub's lifetime is managed by the caller."""
    app = FastAPI(
        title="smarthub",
        summary="Smart-community IoT hub: devices, events and live state of a 小区",
        version="0.1.0",
    )
    app.state.hub = hub
    app.add_middleware(RequestGuard, max_body=hub.settings.api_max_body_bytes)  # token and size before the body
    for router in ROUTERS:
        app.include_router(router)
    for adapter in adapters.load(hub.settings.adapter_modules):  # e.g. a protocol's WebSocket endpoint
        app.router.routes.extend(adapter.routes(hub))
    app.mount("/bigscreen", StaticFiles(directory=BIGSCREEN), name="bigscreen")  # the page's script, style, ECharts
    return app
