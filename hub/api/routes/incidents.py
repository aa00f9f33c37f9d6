"""Incidents: the list, one with its timeline, and the stored events it merged (one click from the wall).

Police (警务) read these too, masked as viewers are; what they take away is the audited export
(hub/api/routes/evidence.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from hub.api.common import READ, STORE, store_unavailable
from hub.api.deps import IncidentReader, IncidentStoreDep, StorageDep
from hub.api.guard import GuardedRoute
from hub.api.schemas import AlertState, EventOut, IdPath, IncidentOut, SiteQ, TimeQ, errors
from hub.incidents.merge import Incident
from hub.incidents.store import IncidentStore
from hub.privacy import masked
from hub.storage.base import EventQuery, StorageError
from hub.times import iso, parse_time
from hub.users import User

router = APIRouter(prefix="/api", route_class=GuardedRoute, tags=["incidents"])


def shown(incident: Incident, user: User) -> dict[str, Any]:
    """An incident as this user may see it: event fields masked below operator, as `/api/events` does."""
    data = incident.to_json()
    if not user.can("operator"):
        for part in data["parts"]:
            if part["fields"]:
                part["fields"] = masked(part["fields"], part["kind"])
    return data


@router.get("/incidents", response_model=list[IncidentOut], responses=READ)
async def incidents(
    store: IncidentStoreDep,
    user: IncidentReader,
    site: SiteQ = None,
    state: AlertState | None = None,
    since: TimeQ = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[dict[str, Any]]:
    """Incidents active since `since` (their latest part or action), newest first."""
    try:
        since_ms = parse_time(since, "since")
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return [shown(i, user) for i in store.find(limit, site=site, state=state, since_ms=since_ms)]


def _get(store: IncidentStore, incident_id: str) -> Incident:
    incident = store.get(incident_id)
    if incident is None:
        raise HTTPException(404, f"no incident {incident_id!r}")
    return incident


@router.get("/incidents/{incident_id}", response_model=IncidentOut, responses=READ | errors(404))
async def incident(incident_id: IdPath, store: IncidentStoreDep, user: IncidentReader) -> dict[str, Any]:
    """One incident with its timeline and the ids of its alerts, events and work orders."""
    return shown(_get(store, incident_id), user)


@router.get("/incidents/{incident_id}/events", response_model=list[EventOut], response_model_exclude_unset=True,
            responses=READ | STORE | errors(404))
async def incident_events(incident_id: IdPath, store: IncidentStoreDep, storage: StorageDep,
                          user: IncidentReader) -> list[dict[str, Any]]:
    """The stored events the incident merged, as `GET /api/events` gives them, oldest first: each is looked up
    by its device and exact time (an event not stored yet, or forgotten by retention, is left out)."""
    found = _get(store, incident_id)
    rows: list[dict[str, Any]] = []
    try:
        for part in (p for p in found.parts if p.source == "event"):
            query = EventQuery(part.site, part.kind, part.device, part.fields.get("type"), part.at_ms, part.at_ms, 10)
            candidates = await storage.query_events(query)
            rows += [r for r in candidates if "id" not in part.fields or r.get("id") == part.fields["id"]][:1]
    except StorageError as exc:
        raise store_unavailable(exc, "GET /api/incidents/{id}/events") from None
    for row in rows:
        row["time"] = iso(row["time"])
    return rows if user.can("operator") else [masked(row, row["kind"]) for row in rows]
