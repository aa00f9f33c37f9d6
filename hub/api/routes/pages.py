"""The pages: the command-center big screen and the maintenance staff's phone page (each asks for a token)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from dashboards import BIGSCREEN, MAINTENANCE
from hub.api.guard import GuardedRoute

router = APIRouter(route_class=GuardedRoute, include_in_schema=False)


@router.get("/", response_class=FileResponse)
async def bigscreen(district: str | None = None) -> FileResponse:
    """The command-center screen (`?site=` one community's); with `?district=SLUG` the district wall, a tile per
    community worst first. Either asks for (or takes `?token=`) the API token itself."""
    page = "index.html" if district is None else "district.html"
    return FileResponse(BIGSCREEN / page, media_type="text/html; charset=utf-8")


@router.get("/m", response_class=FileResponse)
async def maintenance_page() -> FileResponse:
    """Maintenance staff's phone page: their alerts and work orders (asks for name and token)."""
    return FileResponse(MAINTENANCE / "index.html", media_type="text/html; charset=utf-8")
