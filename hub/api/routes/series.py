"""Time series for the big screen's charts, shared for a moment (`ScreenSources.cache`)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from hub import series
from hub.api.common import READ, STORE, store_unavailable
from hub.api.deps import ScreenDep, Viewer
from hub.api.guard import GuardedRoute
from hub.api.schemas import PLAIN, AlertsSeriesOut, ChargingPowerOut, ConsumptionOut, SiteQ, TrafficOut
from hub.storage.base import StorageError

router = APIRouter(prefix="/api/series", route_class=GuardedRoute, tags=["series"])


@router.get("/traffic", response_model=TrafficOut, responses=READ | STORE)
async def traffic_series(src: ScreenDep, _user: Viewer, site: SiteQ = None,
                         days_back: Annotated[int, Query(ge=0, le=30)] = 0) -> dict[str, Any]:
    """Vehicles in and out per hour over one day (0: today, 1: yesterday), China time."""
    day = series.china_day_start(int(time.time() * 1000)) - days_back * series.DAY_MS
    try:
        return await src.cache.get(("traffic", site, day),
                                   lambda: series.traffic(src.storage, site, day, src.settled, src.kinds))
    except StorageError as exc:
        raise store_unavailable(exc, "GET /api/series/traffic") from None


@router.get("/charging_power", response_model=ChargingPowerOut, responses=READ | STORE)
async def charging_power_series(src: ScreenDep, _user: Viewer, site: SiteQ = None,
                                hours: Annotated[int, Query(ge=1, le=168)] = 24,
                                every_s: Annotated[int, Query(ge=60, le=86400)] = 900) -> dict[str, Any]:
    """Total charging power over the last hours (each charger's mean per bucket, summed)."""
    try:
        return await src.cache.get(("charging_power", site, hours, every_s), lambda: series.charging_power(
            src.storage, src.registry, site, hours, every_s * 1000, src.settled, src.kinds))
    except StorageError as exc:
        raise store_unavailable(exc, "GET /api/series/charging_power") from None


_, _consumption = series.declared(series.CONSUMPTION)
UtilityQ = Annotated[Literal[tuple(_consumption.units)], Query(  # type: ignore[attr-defined, valid-type]
    description="What the registers measure (the declaring kind's values)")]
BuildingQ = Annotated[str | None, Query(max_length=64, pattern=PLAIN, description="One building (registry tag)")]
HOURLY_DAYS_MAX = 31
"""Hours over a month at most: 744 buckets."""


@router.get("/consumption", response_model=ConsumptionOut, responses=READ | STORE)
async def consumption_series(src: ScreenDep, _user: Viewer, utility: UtilityQ, site: SiteQ = None,
                             building: BuildingQ = None, every: Literal["hour", "day"] = "day",
                             days: Annotated[int, Query(ge=1, le=366)] = 1) -> dict[str, Any]:
    """Water or electricity used per hour or China day over the last days (today included), summed over the
    meters of a site or one building; a replaced meter's restart counts what was used, never less than 0."""
    if every == "hour" and days > HOURLY_DAYS_MAX:
        raise HTTPException(422, f"every=hour covers at most {HOURLY_DAYS_MAX} days")
    every_ms = series.HOUR_MS if every == "hour" else series.DAY_MS
    key = (series.CONSUMPTION, utility, site, building, every, days)
    try:
        return await src.cache.get(key, lambda: series.consumption(
            src.storage, site, building, utility, days, every_ms, src.kinds))
    except StorageError as exc:
        raise store_unavailable(exc, "GET /api/series/consumption") from None


@router.get("/alerts", response_model=AlertsSeriesOut, responses=READ)
async def alerts_series(src: ScreenDep, _user: Viewer, site: SiteQ = None,
                        days: Annotated[int, Query(ge=1, le=366)] = 30) -> dict[str, Any]:
    """Alerts opened per day, by severity."""

    async def compute() -> dict[str, Any]:
        return series.alerts_per_day(src.alert_store, site, days)

    return await src.cache.get(("alerts", site, days), compute)  # type: ignore[no-any-return]
