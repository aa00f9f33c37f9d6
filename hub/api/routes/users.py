"""API users: an admin adds them (the token is shown once)."""

from __future__ import annotations

from fastapi import APIRouter

from hub.api.common import WRITE
from hub.api.deps import Admin, AuditDep, UsersDep
from hub.api.guard import GuardedRoute
from hub.api.schemas import UserIn, UserOut

router = APIRouter(prefix="/api", route_class=GuardedRoute, tags=["operations"])


@router.post("/users", response_model=UserOut, responses=WRITE)
async def add_user(body: UserIn, users: UsersDep, audit: AuditDep, user: Admin) -> UserOut:
    """Create (or replace) a user; the token is shown once."""
    token = users.add(body.name, body.role)
    audit.record(user.name, user.role, "user.add", body.name, "ok", {"role": body.role})
    return UserOut(name=body.name, role=body.role, token=token)
