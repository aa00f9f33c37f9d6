"""The big screen's figures in one answer, shared for a moment (`ScreenSources.cache`)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from hub import overview
from hub.api.common import READ, STORE, store_unavailable
from hub.api.deps import ScreenDep, Viewer
from hub.api.guard import GuardedRoute
from hub.api.schemas import OverviewOut, SiteQ
from hub.storage.base import StorageError

router = APIRouter(prefix="/api", route_class=GuardedRoute, tags=["overview"])


@router.get("/overview", response_model=OverviewOut, responses=READ | STORE)
async def overview_figures(src: ScreenDep, _user: Viewer, site: SiteQ = None) -> dict[str, Any]:
    """The big screen's figures: devices online and faulted per kind, today's vehicles, access and detections,
    alerts by state and severity, elevators in service, charging, and under `kinds` every kind alike (its counts
    and declared figures, for a screen drawing kinds it has no panel for). Counts only, no personal data; answers are
    shared for `SMARTHUB_SCREEN_CACHE_S` (2 s)."""
    try:
        return await src.cache.get(("overview", site), lambda: overview.overview(
            src.storage, src.registry, src.live, src.alert_store, src.inside, site, int(time.time() * 1000),
            src.settled, src.kinds, src.tally, src.slow))
    except StorageError as exc:
        raise store_unavailable(exc, "GET /api/overview") from None
