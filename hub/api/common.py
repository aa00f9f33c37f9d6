"""What the route modules share: the refusals they declare, the store's 503 and the audit of actions."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel

from hub.api.schemas import errors
from hub.audit import AuditLog
from hub.users import User

log = logging.getLogger(__name__)

READ = errors(401, 403, 422)
"""Refusals of a viewer's read with parameters (403: police, who may read incidents only)."""
WRITE = errors(400, 401, 403, 413, 422)
"""Refusals of any route with a body, before it runs."""
STORE = errors(503)
STORE_MAX_MS = 9_223_372_036_854
"""2262-04-11: InfluxDB keeps int64 nanoseconds and fails on a bound past them; nothing is stored later."""


def store_unavailable(exc: Exception, what: str) -> HTTPException:
    """A generic 503: the store's own message (which may hold the query) goes to the log, never to the caller."""
    log.warning("%s: the store failed: %s: %s", what, type(exc).__name__, str(exc)[:500])
    return HTTPException(503, "the store is unavailable; try again later")


def audited(
    audit: AuditLog, user: User, action: str, target: str, body: BaseModel, run: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Do it, and record who did it and how it ended, whatever happens."""
    detail = body.model_dump(exclude_none=True)
    try:
        result = run()
    except HTTPException as exc:
        audit.record(user.name, user.role, action, target, f"refused {exc.status_code}", detail)
        raise
    audit.record(user.name, user.role, action, target, "ok", detail)
    return result
