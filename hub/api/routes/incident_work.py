"""Working an incident as a whole: acknowledge or resolve it with its alerts and work orders (audited).

A module of its own beside `incidents` (the reads), so the actions and the reads change independently."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException

from hub.alerts.models import TransitionError
from hub.api.common import WRITE, audited
from hub.api.deps import AuditDep, IncidentWorkDep, Maintenance
from hub.api.guard import GuardedRoute
from hub.api.routes.incidents import shown
from hub.api.schemas import AlertActionIn, IdPath, IncidentOut, errors
from hub.incidents.merge import Incident
from hub.users import User

router = APIRouter(prefix="/api", route_class=GuardedRoute, tags=["incidents"])


@router.post("/incidents/{incident_id}/ack", response_model=IncidentOut, responses=WRITE | errors(404, 409))
async def ack_incident(incident_id: IdPath, body: AlertActionIn, work: IncidentWorkDep, audit: AuditDep,
                       user: Maintenance) -> dict[str, Any]:
    """The caller has taken the incident: its open alerts are acknowledged (its work orders stay as they are);
    409 when none is open. By the token's user, who joins the incident's people."""
    return audited(audit, user, "incident.ack", incident_id, body,
                   lambda: _work(work.ack, incident_id, user, body))


@router.post("/incidents/{incident_id}/resolve", response_model=IncidentOut, responses=WRITE | errors(404, 409))
async def resolve_incident(incident_id: IdPath, body: AlertActionIn, work: IncidentWorkDep, audit: AuditDep,
                           user: Maintenance) -> dict[str, Any]:
    """Done: its open work orders are closed and its active alerts resolved; 409 when it is resolved already."""
    return audited(audit, user, "incident.resolve", incident_id, body,
                   lambda: _work(work.resolve, incident_id, user, body))


def _work(action: Callable[[str, str, str | None], Incident | None], incident_id: str, user: User,
          body: AlertActionIn) -> dict[str, Any]:
    try:
        incident = action(incident_id, user.name, body.note)
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
    if incident is None:
        raise HTTPException(404, f"no incident {incident_id!r}")
    return shown(incident, user)
