"""`WS /api/live`: what changes, as it changes, with personal fields masked below operator."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from hub.api.deps import BusDep, UsersDep
from hub.api.guard import GuardedRoute
from hub.privacy import masked

router = APIRouter(prefix="/api", route_class=GuardedRoute)


@router.websocket("/live")
async def live(websocket: WebSocket, users: UsersDep, bus: BusDep, token: str | None = None) -> None:
    """JSON stream: {"type": "event" | "alert" | "order" | "incident" | "devices" | "resync", ...}. Token in
    `?token=` or the Authorization header (browsers cannot set headers on a WebSocket)."""
    header = websocket.headers.get("authorization", "")
    given = token or header.removeprefix("Bearer ").strip()
    await websocket.accept()  # then close with a reason: a refused handshake tells a browser nothing
    user = users.authenticate(given) if given else None
    if user is None:
        await websocket.close(code=4401, reason="a valid token is required")
        return
    if not user.can("viewer"):  # police: incidents and their exports, not the live stream
        await websocket.close(code=4403, reason=f"{user.role} may not watch the live stream")
        return
    whole = user.can("operator")
    sub = bus.subscribe()
    closed = asyncio.create_task(_until_closed(websocket))
    try:
        while not closed.done():
            message = asyncio.create_task(sub.queue.get())
            await asyncio.wait({message, closed}, return_when=asyncio.FIRST_COMPLETED)
            if message.done():
                await websocket.send_text(message.result().decode() if whole else _masked_live(message.result()))
            else:
                message.cancel()
    except WebSocketDisconnect:
        pass
    finally:
        closed.cancel()
        bus.unsubscribe(sub)


def _masked_live(data: bytes) -> str:
    """A live message as a viewer may see it: events with personal fields masked."""
    message = orjson.loads(data)
    if message.get("type") == "event":
        message["event"] = masked(message["event"], message["event"]["kind"])
    elif message.get("type") == "incident":
        for part in message["incident"]["parts"]:
            if part["fields"]:
                part["fields"] = masked(part["fields"], part["kind"])
    return orjson.dumps(message).decode()


async def _until_closed(websocket: WebSocket) -> None:
    """Return when the screen goes away (we ignore anything it sends)."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass
