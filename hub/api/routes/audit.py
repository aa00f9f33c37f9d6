"""The audit log: who did what (commands, alert and order actions, user changes), for admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from hub.api.deps import Admin, AuditDep
from hub.api.guard import GuardedRoute
from hub.api.schemas import AuditOut, TextQ, errors

router = APIRouter(prefix="/api", route_class=GuardedRoute, tags=["operations"])


@router.get("/audit", response_model=list[AuditOut], responses=errors(401, 403, 422))
async def audit(log: AuditDep, _user: Admin, action: TextQ = None,
                limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> list[dict[str, Any]]:
    """Who did what, newest first: commands, alert and order actions, user changes."""
    return log.recent(limit, action)
