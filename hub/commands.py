"""Commands to devices (contract section 3): publish a `cmd`, wait for the `reply` with its id.

A device an adapter serves (hub/adapters.py) is commanded by that adapter instead: it registers as a `Carrier`,
and a command for a device it carries goes to it, the same args in, the same reply shape out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from devices.base import Accepted
from hub.state import DeviceState

REPLY_TIMEOUT_S = 10.0


class Carrier(Protocol):
    def carries(self, site: str, kind: str, device: str) -> bool:
        """Whether this adapter delivers commands to that device now (it is connected through it)."""
        ...

    async def send(self, site: str, kind: str, device: str, op: str, args: dict[str, Any],
                   command_id: str) -> dict[str, Any]:
        """Carry out the command; the reply as the contract's: {"id", "ok", "error"?}."""
        ...


class Commands:
    def __init__(self, root: str, publish: Callable[[str, bytes, int, bool], Awaitable[None]],
                 timeout_s: float = REPLY_TIMEOUT_S) -> None:
        self.root = root
        self.publish = publish
        self.timeout_s = timeout_s
        self._waiting: dict[str, tuple[tuple[str, str, str], asyncio.Future[dict[str, Any]]]] = {}
        """command id -> (the commanded device, its reply to come)"""
        self.carriers: list[Carrier] = []

    def carry(self, carrier: Carrier) -> None:
        if carrier not in self.carriers:
            self.carriers.append(carrier)

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
        for carrier in self.carriers:
            if carrier.carries(site, kind, device):
                return await asyncio.wait_for(carrier.send(site, kind, device, op, args, command_id), self.timeout_s)
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = ((site, kind, device), reply)
        try:
            payload = orjson.dumps({"id": command_id, "op": op, "args": args})
            await self.publish(f"{self.root}/{site}/{kind}/{device}/cmd", payload, 1, False)
            return await asyncio.wait_for(reply, self.timeout_s)
        finally:
            self._waiting.pop(command_id, None)
