"""Stored events, as every backend returns them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from hub.api.common import READ, STORE, STORE_MAX_MS, store_unavailable
from hub.api.deps import KindsDep, StorageDep, Viewer
from hub.api.guard import GuardedRoute
from hub.api.schemas import DeviceQ, EventOut, KindQ, SiteQ, TimeQ, TypeQ
from hub.privacy import masked
from hub.storage.base import EventQuery, StorageError
from hub.times import iso, parse_time

router = APIRouter(prefix="/api", route_class=GuardedRoute, tags=["events"])


# exclude_unset: an event without `id` or `seq` has no such key (the model's optional fields add no nulls)
@router.get("/events", response_model=list[EventOut], response_model_exclude_unset=True, responses=READ | STORE)
async def events(
    kinds: KindsDep,
    storage: StorageDep,
    user: Viewer,
    site: SiteQ = None,
    kind: KindQ = None,
    device: DeviceQ = None,
    type: TypeQ = None,  # noqa: A002 - the contract's name
    since: TimeQ = None,
    until: TimeQ = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[dict[str, Any]]:
    """Stored events, newest first."""
    if kind is not None and kind not in kinds:
        raise HTTPException(422, f"unknown kind {kind!r}; one of {', '.join(sorted(kinds))}")
    try:
        since_ms, until_ms = (_stored(parse_time(t, name)) for t, name in ((since, "since"), (until, "until")))
        query = EventQuery(site, kind, device, type, since_ms, until_ms, limit)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        rows = await storage.query_events(query)
    except StorageError as exc:
        raise store_unavailable(exc, "GET /api/events") from None
    for row in rows:
        row["time"] = iso(row["time"])
    return rows if user.can("operator") else [masked(row, row["kind"]) for row in rows]


def _stored(ms: int | None) -> int | None:
    """A valid time bound within what a store can hold (a bound past it selects the same points)."""
    return None if ms is None else min(ms, STORE_MAX_MS)
