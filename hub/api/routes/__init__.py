"""The API's routes, one module per resource (`hub.api.routes.<resource>`), and the tuple `create_app` serves.

ROUTERS lives here, beside the modules it lists, so adding a resource touches only this package."""

from __future__ import annotations

from fastapi import APIRouter

from hub.api.routes import (
    alerts,
    audit,
    commands,
    deadletters,
    devices,
    district,
    events,
    evidence,
    health,
    incident_work,
    incidents,
    live,
    orders,
    overview,
    pages,
    screen,
    series,
    users,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router, pages.router, devices.router, events.router, deadletters.router, alerts.router, incidents.router,
    evidence.router,
    live.router, orders.router, commands.router, audit.router, users.router, series.router, overview.router,
    screen.router, incident_work.router, district.router,
)
"""Every router the app serves, in one place (the OpenAPI tests walk the same tuple)."""
