"""Dependencies of the routes: the hub, and who is calling with which role."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.app import Hub
from hub.users import Role, User

bearer = HTTPBearer(auto_error=False, description="API token (`smarthub user add`, or SMARTHUB_ADMIN_TOKEN)")


def get_hub(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> User:
    """401 without a valid Bearer token."""
    user = get_hub(request).users.authenticate(credentials.credentials) if credentials else None
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a valid Bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


def require(role: Role) -> object:
    """A dependency that lets `role` and the roles above it through (403 for the others)."""

    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if not user.can(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {role} role; {user.name} is {user.role}")
        return user

    return Depends(check)


HubDep = Annotated[Hub, Depends(get_hub)]
Viewer = Annotated[User, require("viewer")]
Maintenance = Annotated[User, require("maintenance")]
Operator = Annotated[User, require("operator")]
Admin = Annotated[User, require("admin")]
