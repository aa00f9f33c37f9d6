"""Commands to devices (contract section 3): checked against the kind, sent, the reply returned, audited."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import ValidationError

from hub.api.common import WRITE
from hub.api.deps import AuditDep, CommandsDep, KindsDep, Operator
from hub.api.guard import GuardedRoute
from hub.api.schemas import CommandIn, DevicePath, KindPath, ReplyOut, SitePath, errors

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", route_class=GuardedRoute, tags=["devices"])


# exclude_unset: a reply without `error` has no such key
@router.post("/devices/{site}/{kind}/{device}/commands", response_model=ReplyOut, response_model_exclude_unset=True,
             responses=WRITE | errors(404, 503, 504))
async def command(site: SitePath, kind: KindPath, device: DevicePath, body: CommandIn, kinds: KindsDep,
                  audit: AuditDep, commands: CommandsDep, user: Operator) -> dict[str, Any]:
    """Send a command and return the device's reply (504 when none comes in time). Elevators and
    cameras take none: elevators are never driven remotely. An op may need more than the operator role
    (its kind says which). Every attempt is audited."""
    target = f"{site}/{kind}/{device}"
    detail = {"op": body.op, "args": body.args}

    def refuse(status: int, why: str) -> HTTPException:
        audit.record(user.name, user.role, "device.command", target, f"refused {status}", detail)
        return HTTPException(status, why)

    spec = kinds.get(kind)
    if spec is None:
        raise refuse(404, f"unknown kind {kind!r}")
    if not spec.commands:
        raise refuse(403, f"{kind} devices take no commands" + (f": {spec.no_commands}" if spec.no_commands else ""))
    if body.op not in spec.commands:
        raise refuse(422, f"{kind} has no op {body.op!r}; ops: {', '.join(spec.commands)}")
    role = spec.command_role(body.op)
    if not user.can(role):
        raise refuse(403, f"{kind} {body.op} needs the {role} role; {user.name} is {user.role}")
    try:
        args = spec.commands[body.op].model_validate(body.args).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise refuse(422, f"bad args: {exc.errors(include_url=False)[0]['msg']}") from None
    try:
        reply = await commands.send(site, kind, device, body.op, args)
    except TimeoutError:
        raise refuse(504, f"{target} did not answer within {commands.timeout_s:.0f} s") from None
    except Exception as exc:  # noqa: BLE001 - the broker is away
        log.warning("command %s %s: the broker failed: %s: %s", target, body.op, type(exc).__name__, str(exc)[:500])
        raise refuse(503, "the broker cannot be reached; try again later") from None
    audit.record(user.name, user.role, "device.command", target, "ok" if reply.get("ok") else "failed",
                     {**detail, "reply": reply})
    return reply
