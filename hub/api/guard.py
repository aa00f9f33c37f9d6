"""What every request passes before a route reads it: who is asking, how big the body is, and JSON that
holds only finite numbers.

A request to a route that needs a role is refused (401/403) before any byte of its body is read
(`GuardedRoute`), and a body over the limit is refused (413) from its Content-Length, or, when it streams
in chunks, as soon as the bytes counted pass the limit (`RequestGuard`, pure ASGI); nothing past the limit
is ever buffered.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.deps import ROLE_ATTR, Access, refusal
from hub.users import Role

CLOSE = {"Connection": "close"}
"""On a refusal before the body is read: the server closes the connection instead of draining what is left."""
MAX_INT_DIGITS = 64
"""Longer integer literals are refused (Python would spend time on, or refuse, a 4,300-digit int)."""


class RequestGuard:
    """Refuses a body over `max_body` bytes with 413, from its Content-Length or while it streams.

    Nothing is checked until the route asks for the body, so the route's token check (`GuardedRoute`)
    comes first; then the declared length, then every chunk as it arrives."""

    def __init__(self, app: ASGIApp, max_body: int, larger: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.larger = dict(larger or {})
        """Path prefix -> its own cap: an adapter whose devices post pictures (hub/adapters.py `body_limits`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        cap = next((limit for prefix, limit in self.larger.items() if path.startswith(prefix)), self.max_body)
        await self.app(scope, self._guarded(scope, receive, cap), send)

    def _guarded(self, scope: Scope, receive: Receive, cap: int) -> Receive:
        seen: int | None = None  # None until the first read: then the declared length is checked once

        async def guarded() -> Message:
            nonlocal seen
            if seen is None:
                declared = dict(scope["headers"]).get(b"content-length")
                if declared is not None and (not declared.isdigit() or len(declared) > 18):
                    raise HTTPException(400, "Content-Length must be a byte count")
                if declared is not None and int(declared) > cap:
                    raise self._too_large(cap)
                seen = 0
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise self._too_large(cap)
            return message

        return guarded

    def _too_large(self, cap: int) -> HTTPException:
        return HTTPException(413, f"the request body is larger than {cap} bytes", headers=CLOSE)


def route_access(route: BaseRoute) -> Access | None:
    """Who the `require(...)` dependency anywhere in the route's dependency tree admits, if there is one."""
    if not isinstance(route, APIRoute):
        return None
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        access = getattr(dependency.call, ROLE_ATTR, None)
        if access is not None:
            return access  # type: ignore[no-any-return]
        pending.extend(dependency.dependencies)
    return None


def route_role(route: BaseRoute) -> Role | None:
    """The lowest staff role a route admits, if it needs one."""
    access = route_access(route)
    return access.least if access is not None else None


def bearer_token(header: str | None) -> str | None:
    """The token of `Authorization: Bearer <token>` (scheme case-insensitive, as HTTPBearer reads it)."""
    scheme, _, token = (header or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers


def strict_loads(body: bytes) -> Any:
    """JSON without NaN, Infinity or numbers beyond a float (1e999), which no answer could carry back.

    Every failure is a JSONDecodeError, so FastAPI answers 422 with the reason."""
    try:
        return json.loads(body, parse_constant=_non_finite, parse_float=_finite_float, parse_int=_bounded_int)
    except json.JSONDecodeError:
        raise
    except UnicodeDecodeError:
        raise json.JSONDecodeError("the body is not UTF-8", "", 0) from None
    except RecursionError:
        raise json.JSONDecodeError("the body is nested too deeply", "", 0) from None
    except ValueError as exc:
        raise json.JSONDecodeError(str(exc), "", 0) from None


def _non_finite(name: str) -> float:
    raise ValueError(f"{name} is not allowed: numbers in a body must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:32]} is too large for a number: numbers in a body must be finite")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits is too long (at most {MAX_INT_DIGITS})")
    return int(text)


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_loads(await self.body())
        return self._json


class GuardedRoute(APIRoute):
    """A route that checks the caller's token and role before it reads the body (which FastAPI reads before
    any dependency runs), and parses a JSON body with `strict_loads`. The dependencies check the role again."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()
        access = route_access(self)

        async def guarded(request: Request) -> Response:
            if access is not None:
                token = bearer_token(request.headers.get("authorization"))
                found = refusal(request.app.state.hub.users, token, access)
                if isinstance(found, HTTPException):
                    if _has_body(request):
                        found.headers = {**(found.headers or {}), **CLOSE}
                    raise found
            return await handler(_StrictJsonRequest(request.scope, request.receive))  # type: ignore[no-any-return]

        return guarded
