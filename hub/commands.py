"""Commands to devices (contract section 3): publish a `cmd`, wait for the `reply` with its id."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from devices.base import Accepted
from hub.state import DeviceState

REPLY_TIMEOUT_S = 10.0


class Commands:
    def __init__(self, root: str, publish: Callable[[str, bytes, int, bool], Awaitable[None]],
                 timeout_s: float = REPLY_TIMEOUT_S) -> None:
        self.root = root
        self.publish = publish
        self.timeout_s = timeout_s
        self._waiting: dict[str, tuple[tuple[str, str, str], asyncio.Future[dict[str, Any]]]] = {}
        """command id -> (the commanded device, its reply to come)"""

    def on_message(self, msg: Accepted, state: DeviceState) -> None:
        """Pipeline listener: a reply completes the command waiting for its id, if it comes from the device
        commanded. Another device that learnt the id (it is no secret on a shared broker) cannot answer for it."""
        if msg.channel != "reply":
            return
        entry = self._waiting.get(msg.payload.id)  # type: ignore[attr-defined]
        if entry is None or entry[0] != (msg.site, msg.kind, msg.device):
            return
        del self._waiting[msg.payload.id]  # type: ignore[attr-defined]
        waiting = entry[1]
        if not waiting.done():
            waiting.set_result(msg.payload.model_dump(include={"id", "ok", "error"}, exclude_none=True))

    async def send(self, site: str, kind: str, device: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """The device's reply; TimeoutError if none comes in time (the command may still run)."""
        command_id = str(uuid.uuid4())
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = ((site, kind, device), reply)
        try:
            payload = orjson.dumps({"id": command_id, "op": op, "args": args})
            await self.publish(f"{self.root}/{site}/{kind}/{device}/cmd", payload, 1, False)
            return await asyncio.wait_for(reply, self.timeout_s)
        finally:
            self._waiting.pop(command_id, None)
