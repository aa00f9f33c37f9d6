"""The district wall's figures (街道联动指挥中心): every community of a district rolled up, worst first, shared for
a moment like the overview (`DistrictSources.cache`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, HTTPException

from hub import district as rollup
from hub.api.common import READ
from hub.api.deps import DistrictDep, DistrictSources, Viewer
from hub.api.district_schemas import DistrictOut, DistrictsOut
from hub.api.guard import GuardedRoute
from hub.api.schemas import SitePath, errors
from hub.times import iso

router = APIRouter(prefix="/api", route_class=GuardedRoute, tags=["district"])


async def _compute(src: DistrictSources, slugs: Sequence[str]) -> list[dict[str, Any]]:
    now_ms = int(time.time() * 1000)
    return await rollup.districts(src.registry, src.live, src.alert_store.active(), src.order_store.open(),
                                  src.kinds, src.controllers, slugs, now_ms)


@router.get("/district", response_model=DistrictsOut, responses=READ)
async def every_district(src: DistrictDep, _user: Viewer) -> dict[str, Any]:
    """Every district the registry declares, each with its communities worst first: devices online, alerts by
    severity, overdue work orders and each kind's gauge (elevator availability, charging load against the cap),
    with the score that orders them. Shared for `SMARTHUB_SCREEN_CACHE_S` (2 s)."""
    slugs = tuple(src.registry.districts)
    answers = await src.cache.get(("district", slugs), lambda: _compute(src, slugs))
    return {"time": answers[0]["time"] if answers else iso(int(time.time() * 1000)), "districts": answers}


@router.get("/district/{slug}", response_model=DistrictOut, responses=READ | errors(404))
async def one_district(src: DistrictDep, _user: Viewer, slug: SitePath) -> dict[str, Any]:
    """One district's wall: its communities worst first (404 for a district the registry does not declare)."""
    if slug not in src.registry.districts:
        raise HTTPException(404, f"no district {slug!r} in the registry")
    answers = await src.cache.get(("district", (slug,)), lambda: _compute(src, (slug,)))
    return answers[0]  # type: ignore[no-any-return]
