"""Dependencies of the routes: the hub, and who is calling."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.app import Hub

bearer = HTTPBearer(auto_error=False, description="API token (SMARTHUB_ADMIN_TOKEN for the first admin)")


def get_hub(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """The caller's role; 401 without a valid Bearer token. (Roles beyond admin come later.)"""
    hub = get_hub(request)
    if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), hub.admin_token.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "a valid Bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    return "admin"


HubDep = Annotated[Hub, Depends(get_hub)]
RoleDep = Annotated[str, Depends(require_token)]
