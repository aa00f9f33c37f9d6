"""Dead letters: what ingest refused, and why."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response

from hub.api.deps import Admin, DeadLettersDep
from hub.api.guard import GuardedRoute
from hub.api.schemas import DeadLetterOut, TextQ, TimeQ, errors
from hub.deadletter import Filter
from hub.times import iso, parse_time

router = APIRouter(prefix="/api", route_class=GuardedRoute, tags=["operations"])

DEADLETTER_PAGE = {200: {"description": "A page of dead letters, newest first", "headers": {"Link": {
    "description": 'When more follow: `</api/deadletters?...&before=N>; rel="next"`, the next page (same filters)',
    "schema": {"type": "string"}}}}}


@router.get("/deadletters", response_model=list[DeadLetterOut], responses=errors(401, 403, 422) | DEADLETTER_PAGE)
async def dead_letters(
    letters: DeadLettersDep,
    _user: Admin,
    request: Request,
    response: Response,
    reason: TextQ = None,
    kind: TextQ = None,
    since: TimeQ = None,
    until: TimeQ = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="Cursor: the `before` of the `next` "
                                        "link (rows older than this one)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeadLetterOut]:
    """Rejected messages, newest first, with the reason and the (truncated) payload; filters combine (`since` and
    `until` inclusive, ISO 8601 or epoch ms). Paged: follow the `Link` header's `rel="next"` to the end."""
    try:
        since_ms, until_ms = (parse_time(t, name) for t, name in ((since, "since"), (until, "until")))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    letters.flush()
    rows, cursor = letters.page(limit, Filter(reason or None, kind or None, since_ms, until_ms, before))
    if cursor is not None:
        url = request.url.remove_query_params("before").include_query_params(before=cursor)
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    return [DeadLetterOut(**row | {"received": iso(row["received"])}) for row in rows]
