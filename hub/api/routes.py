"""Routes of contract section 6 that the ingest spine serves: health, metrics, devices, events."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse

from dashboards import BIGSCREEN, MAINTENANCE
from hub.alerts.models import Alert, TransitionError
from hub.alerts.orders import report
from hub.alerts.reliability import by_device, measure
from hub.api.deps import HubDep, RoleDep
from hub.api.schemas import AlertActionIn, DeadLetterOut, DeviceOut, HealthOut, OrderActionIn, OrderIn
from hub.app import Hub
from hub.metrics import render
from hub.storage.base import EventQuery, StorageError
from hub.times import iso, parse_time

open_router = APIRouter()
"""Routes that need no token (probes and scrapers)."""
api_router = APIRouter(prefix="/api")


@open_router.get("/api/health", response_model=HealthOut, tags=["operations"])
async def health(hub: HubDep) -> HealthOut:
    """Liveness plus broker and store reachability. Always 200 while the process lives: a store
    outage is `degraded`, not a reason to restart the hub (the outbox is buffering)."""
    store = await hub.storage.ping()
    broker = hub.mqtt.connected
    return HealthOut(
        status="ok" if store and broker else "degraded",
        broker=broker,
        store=store,
        store_backend=hub.storage.name,
        outbox_points=hub.outbox.depth,
        uptime_s=round(time.time() - hub.started_at, 1),
    )


@open_router.get("/", include_in_schema=False, response_class=FileResponse)
async def bigscreen() -> FileResponse:
    """The command-center screen; it asks for (or takes `?token=`) the API token itself."""
    return FileResponse(BIGSCREEN / "index.html", media_type="text/html; charset=utf-8")


@open_router.get("/m", include_in_schema=False, response_class=FileResponse)
async def maintenance_page() -> FileResponse:
    """Maintenance staff's phone page: their alerts and work orders (asks for name and token)."""
    return FileResponse(MAINTENANCE / "index.html", media_type="text/html; charset=utf-8")


@open_router.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(hub: HubDep) -> Response:
    """Prometheus text format."""
    return Response(render(hub.metrics), media_type="text/plain; version=0.0.4; charset=utf-8")


@api_router.get("/devices", response_model=list[DeviceOut], tags=["devices"])
async def devices(
    hub: HubDep,
    _role: RoleDep,
    site: str | None = None,
    kind: str | None = None,
    online: bool | None = None,
) -> list[DeviceOut]:
    """The registry plus live state of every device (registered or heard on the wire)."""
    now_ms = int(time.time() * 1000)
    out = []
    for device in hub.registry:
        if (site and device.site != site) or (kind and device.kind != kind):
            continue
        state = hub.live.devices.get(device.key)
        is_online = bool(state and state.online(now_ms, hub.live.heartbeat_for(device)))
        if online is not None and is_online != online:
            continue
        out.append(DeviceOut.of(device, state, is_online))
    out.sort(key=lambda d: (d.site, d.kind, d.device))
    return out


@api_router.get("/events", tags=["events"])
async def events(
    hub: HubDep,
    _role: RoleDep,
    site: str | None = None,
    kind: str | None = None,
    device: str | None = None,
    type: str | None = None,  # noqa: A002 - the contract's name
    since: Annotated[str | None, Query(description="ISO 8601 or epoch ms")] = None,
    until: Annotated[str | None, Query(description="ISO 8601 or epoch ms")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[dict[str, Any]]:
    """Stored events, newest first."""
    if kind is not None and kind not in hub.kinds:
        raise HTTPException(422, f"unknown kind {kind!r}; one of {', '.join(sorted(hub.kinds))}")
    try:
        query = EventQuery(site, kind, device, type, parse_time(since, "since"), parse_time(until, "until"), limit)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        rows = await hub.storage.query_events(query)
    except StorageError as exc:
        raise HTTPException(503, f"store unavailable: {exc}") from None
    for row in rows:
        row["time"] = iso(row["time"])
    return rows


@api_router.get("/deadletters", response_model=list[DeadLetterOut], tags=["operations"])
async def dead_letters(
    hub: HubDep,
    _role: RoleDep,
    reason: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeadLetterOut]:
    """Rejected messages, newest first, with the reason and the (truncated) payload."""
    hub.dead_letters.flush()
    return [DeadLetterOut(**row | {"received": iso(row["received"])}) for row in hub.dead_letters.recent(limit, reason)]


@api_router.get("/alerts", tags=["alerts"])
async def alerts(
    hub: HubDep,
    _role: RoleDep,
    site: str | None = None,
    state: Literal["open", "acknowledged", "resolved"] | None = None,
    kind: str | None = None,
    severity: Literal["critical", "major", "minor", "info"] | None = None,
    device: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[dict[str, Any]]:
    """Alerts, newest first (contract section 4 payloads)."""
    found = hub.alert_store.find(limit, site=site, state=state, kind=kind, severity=severity, device=device)
    return [a.to_json() for a in found]


@api_router.post("/alerts/{alert_id}/ack", tags=["alerts"])
async def ack_alert(alert_id: str, body: AlertActionIn, hub: HubDep, _role: RoleDep) -> dict[str, Any]:
    """Someone has taken the alert: who, and optionally a note."""
    return _transition(hub.alerts.ack, alert_id, body)


@api_router.post("/alerts/{alert_id}/resolve", tags=["alerts"])
async def resolve_alert(alert_id: str, body: AlertActionIn, hub: HubDep, _role: RoleDep) -> dict[str, Any]:
    """The problem is fixed: who, and optionally a note."""
    return _transition(hub.alerts.resolve, alert_id, body)


def _transition(action: Callable[[str, str, str | None], Alert | None], alert_id: str,
                body: AlertActionIn) -> dict[str, Any]:
    try:
        alert = action(alert_id, body.by, body.note)
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id!r}")
    return alert.to_json()


@api_router.websocket("/live")
async def live(websocket: WebSocket, token: str | None = None) -> None:
    """JSON stream: {"type": "event" | "alert" | "devices" | "resync", ...}. Token in `?token=` or the
    Authorization header (browsers cannot set headers on a WebSocket)."""
    hub: Hub = websocket.app.state.hub
    header = websocket.headers.get("authorization", "")
    given = token or header.removeprefix("Bearer ").strip()
    await websocket.accept()  # then close with a reason: a refused handshake tells a browser nothing
    if not given or not secrets.compare_digest(given.encode(), hub.admin_token.encode()):
        await websocket.close(code=4401, reason="a valid token is required")
        return
    sub = hub.bus.subscribe()
    closed = asyncio.create_task(_until_closed(websocket))
    try:
        while not closed.done():
            message = asyncio.create_task(sub.queue.get())
            await asyncio.wait({message, closed}, return_when=asyncio.FIRST_COMPLETED)
            if message.done():
                await websocket.send_text(message.result().decode())
            else:
                message.cancel()
    except WebSocketDisconnect:
        pass
    finally:
        closed.cancel()
        hub.bus.unsubscribe(sub)


async def _until_closed(websocket: WebSocket) -> None:
    """Return when the screen goes away (we ignore anything it sends)."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


@api_router.get("/reliability", tags=["alerts"])
async def reliability(
    hub: HubDep,
    _role: RoleDep,
    kind: str = "elevator",
    site: str | None = None,
    days: Annotated[float, Query(gt=0, le=366)] = 30,
) -> dict[str, Any]:
    """Failures, MTTR, MTBF and availability per device and per site over the last `days`.

    Devices without failures in the window are listed with availability 1."""
    end_ms = int(time.time() * 1000)
    start_ms = end_ms - int(days * 86_400_000)
    alerts = [a for a in hub.alert_store.find(100_000, site=site, kind=kind) if (a.resolved_ms or end_ms) > start_ms]
    per_device = by_device(alerts, start_ms, end_ms)
    devices = [d for d in hub.registry if d.kind == kind and (site is None or d.site == site)]
    rows = []
    for d in sorted(devices, key=lambda d: d.key):
        r = per_device.get(d.key) or measure([], start_ms, end_ms)
        rows.append({"site": d.site, "device": d.device, "name": d.name, **asdict(r)})
    sites: dict[str, Any] = {}
    for site_name in sorted({d.site for d in devices}):
        site_alerts = [a for a in alerts if a.site == site_name]
        n = sum(1 for d in devices if d.site == site_name)
        total = measure(site_alerts, start_ms, end_ms)
        availability = sum(r["availability"] for r in rows if r["site"] == site_name) / n
        sites[site_name] = {**asdict(total), "devices": n, "availability": round(availability, 6)}
    return {"kind": kind, "days": days, "sites": sites, "devices": rows}


@api_router.get("/orders", tags=["work orders"])
async def orders(
    hub: HubDep,
    _role: RoleDep,
    team: str | None = None,
    state: Literal["open", "dispatched", "on_site", "resolved"] | None = None,
    site: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[dict[str, Any]]:
    """Work orders, newest first, with their deadlines and which of them are missed."""
    now_ms = int(time.time() * 1000)
    return [o.to_json(now_ms) for o in hub.desk.store.find(limit, team=team, state=state, site=site)]


@api_router.get("/orders/report", tags=["work orders"])
async def orders_report(hub: HubDep, _role: RoleDep, days: Annotated[float, Query(gt=0, le=366)] = 30,
                        team: str | None = None) -> dict[str, Any]:
    """Compliance per team: orders, and the share dispatched, on site and resolved in time."""
    now_ms = int(time.time() * 1000)
    found = hub.desk.store.find(100_000, since_ms=now_ms - int(days * 86_400_000), team=team)
    return {"days": days, "teams": report(found, now_ms)}


@api_router.post("/alerts/{alert_id}/order", tags=["work orders"])
async def order_for_alert(alert_id: str, body: OrderIn, hub: HubDep, _role: RoleDep) -> dict[str, Any]:
    """Make an alert a work order (or return the one it has)."""
    alert = hub.alerts._find(alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id!r}")
    return hub.desk.open(alert, body.team, body.by).to_json(int(time.time() * 1000))


@api_router.post("/orders/{order_id}/{action}", tags=["work orders"])
async def order_action(order_id: str, action: Literal["dispatch", "arrive", "resolve"], body: OrderActionIn,
                       hub: HubDep, _role: RoleDep) -> dict[str, Any]:
    """dispatch (to `assignee`, default the caller), arrive on site, resolve (closes the alert too)."""
    try:
        if action == "dispatch":
            order = hub.desk.dispatch(order_id, body.assignee or body.by, body.by, body.note)
        elif action == "arrive":
            order = hub.desk.arrive(order_id, body.by, body.note)
        else:
            order = hub.desk.resolve(order_id, body.by, body.note)
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
    if order is None:
        raise HTTPException(404, f"no work order {order_id!r}")
    return order.to_json(int(time.time() * 1000))
