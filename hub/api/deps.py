"""Dependencies of the routes: the parts of the hub they use, and who is calling with which role.

A route asks for what it uses (`DeskDep`, `AuditDep`, ...) rather than the whole `Hub`, so what it can
reach is in its signature."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.alerts.desk import OrderDesk
from hub.alerts.engine import AlertEngine
from hub.alerts.store import AlertStore, OrderStore
from hub.audit import AuditLog
from hub.deadletter import DeadLetters
from hub.registry import Registry
from hub.users import Role, User, Users

if TYPE_CHECKING:  # not at run time: hub.app starts the API (`Hub.http_server`), so no import circle
    from hub.app import Hub

bearer = HTTPBearer(auto_error=False, description="API token (`smarthub user add`, or SMARTHUB_ADMIN_TOKEN)")
ROLE_ATTR = "smarthub_role"
"""Set on each `require(role)` check, so the request guard finds a route's role before the body is read."""


def get_hub(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


def refusal(users: Users, token: str | None, role: Role) -> HTTPException | User:
    """The caller of `token`, or why not: 401 without a valid token, 403 below `role`.

    One function for the request guard (before the body is read) and the route dependencies (after)."""
    user = users.authenticate(token) if token else None
    if user is None:
        return HTTPException(status.HTTP_401_UNAUTHORIZED, "a valid Bearer token is required",
                             headers={"WWW-Authenticate": "Bearer"})
    if not user.can(role):
        return HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {role} role; {user.name} is {user.role}")
    return user


def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> User:
    """401 without a valid Bearer token."""
    found = refusal(get_hub(request).users, credentials.credentials if credentials else None, "viewer")
    if isinstance(found, HTTPException):
        raise found
    return found


def require(role: Role) -> object:
    """A dependency that lets `role` and the roles above it through (403 for the others)."""

    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if not user.can(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {role} role; {user.name} is {user.role}")
        return user

    setattr(check, ROLE_ATTR, role)
    return Depends(check)


HubDep = Annotated["Hub", Depends(get_hub)]
"""The whole hub: for routes that use many of its parts (health, overview); prefer the narrow ones below."""


def _part(name: str) -> object:
    """A dependency giving one part of the hub (FastAPI needs `request` annotated, hence no lambda)."""

    def get(request: Request) -> object:
        return getattr(get_hub(request), name)

    get.__name__ = f"get_{name}"
    return Depends(get)


AlertsDep = Annotated[AlertEngine, _part("alerts")]
AlertStoreDep = Annotated[AlertStore, _part("alert_store")]
AuditDep = Annotated[AuditLog, _part("audit")]
DeadLettersDep = Annotated[DeadLetters, _part("dead_letters")]
DeskDep = Annotated[OrderDesk, _part("desk")]
OrderStoreDep = Annotated[OrderStore, _part("order_store")]
RegistryDep = Annotated[Registry, _part("registry")]
UsersDep = Annotated[Users, _part("users")]

Viewer = Annotated[User, require("viewer")]
Maintenance = Annotated[User, require("maintenance")]
Operator = Annotated[User, require("operator")]
Admin = Annotated[User, require("admin")]
