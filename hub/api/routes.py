"""Routes of contract section 6 that the ingest spine serves: health, metrics, devices, events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse
from pydantic import BaseModel, ValidationError

from dashboards import BIGSCREEN, MAINTENANCE
from hub import overview, series
from hub.alerts.models import Alert, TransitionError
from hub.alerts.orders import report
from hub.alerts.reliability import by_device, measure
from hub.api.deps import Admin, HubDep, Maintenance, Operator, Viewer
from hub.api.guard import GuardedRoute
from hub.api.schemas import (
    NAME,
    AlertActionIn,
    CommandIn,
    DeadLetterOut,
    DeviceOut,
    DevicePath,
    DeviceQ,
    HealthOut,
    IdPath,
    KindPath,
    KindQ,
    OrderActionIn,
    OrderIn,
    SitePath,
    SiteQ,
    TextQ,
    TimeQ,
    TypeQ,
    UserIn,
    UserOut,
    errors,
)
from hub.app import Hub
from hub.deadletter import Filter
from hub.metrics import render
from hub.privacy import masked
from hub.storage.base import EventQuery, StorageError
from hub.times import iso, parse_time
from hub.users import User

log = logging.getLogger(__name__)

open_router = APIRouter(route_class=GuardedRoute)
"""Routes that need no token (probes and scrapers)."""
api_router = APIRouter(prefix="/api", route_class=GuardedRoute)

READ = errors(401, 422)
"""Refusals of a viewer's read with parameters."""
WRITE = errors(400, 401, 403, 413, 422)
"""Refusals of any route with a body, before it runs."""
STORE = errors(503)
STORE_MAX_MS = 9_223_372_036_854
"""2262-04-11: InfluxDB keeps int64 nanoseconds and fails on a bound past them; nothing is stored later."""


def store_unavailable(exc: Exception, what: str) -> HTTPException:
    """A generic 503: the store's own message (which may hold the query) goes to the log, never to the caller."""
    log.warning("%s: the store failed: %s: %s", what, type(exc).__name__, str(exc)[:500])
    return HTTPException(503, "the store is unavailable; try again later")


@open_router.get("/api/health", response_model=HealthOut, tags=["operations"], responses={
    200: {"description": "Ingest is receiving (status ok, or degraded: e.g. the store is down and the outbox buffers)"},
    503: {"model": HealthOut, "description": "Ingest is not receiving: broker lost past SMARTHUB_BROKER_GRACE_S, "
          "a hub task not running, the store down with the outbox near its cap, or MQTT held (back-pressure)"}})
async def health(hub: HubDep, response: Response) -> HealthOut:
    """Is the hub receiving, and how is each part (broker, store, outbox, tasks) since when. Answers at once:
    it reads what the hub last knew (the writer, the MQTT link, the health watcher's store probe) and never
    waits for the store or the broker."""
    report = hub.health.report()
    response.status_code = report.http_status
    return HealthOut.of(report, hub.mqtt.connected, hub.storage.name, hub.outbox.depth,
                        round(time.time() - hub.started_at, 1))


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


@api_router.get("/devices", response_model=list[DeviceOut], tags=["devices"], responses=READ)
async def devices(
    hub: HubDep,
    user: Viewer,
    site: SiteQ = None,
    kind: KindQ = None,
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
        row = DeviceOut.of(device, state, is_online)
        if row.last_event is not None and not user.can("operator"):
            row.last_event = masked(row.last_event, device.kind)
        out.append(row)
    out.sort(key=lambda d: (d.site, d.kind, d.device))
    return out


@api_router.get("/events", tags=["events"], responses=READ | STORE)
async def events(
    hub: HubDep,
    user: Viewer,
    site: SiteQ = None,
    kind: KindQ = None,
    device: DeviceQ = None,
    type: TypeQ = None,  # noqa: A002 - the contract's name
    since: TimeQ = None,
    until: TimeQ = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[dict[str, Any]]:
    """Stored events, newest first."""
    if kind is not None and kind not in hub.kinds:
        raise HTTPException(422, f"unknown kind {kind!r}; one of {', '.join(sorted(hub.kinds))}")
    try:
        since_ms, until_ms = (_stored(parse_time(t, name)) for t, name in ((since, "since"), (until, "until")))
        query = EventQuery(site, kind, device, type, since_ms, until_ms, limit)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        rows = await hub.storage.query_events(query)
    except StorageError as exc:
        raise store_unavailable(exc, "GET /api/events") from None
    for row in rows:
        row["time"] = iso(row["time"])
    return rows if user.can("operator") else [masked(row, row["kind"]) for row in rows]


def _stored(ms: int | None) -> int | None:
    """A valid time bound within what a store can hold (a bound past it selects the same points)."""
    return None if ms is None else min(ms, STORE_MAX_MS)


DEADLETTER_PAGE = {200: {"description": "A page of dead letters, newest first", "headers": {"Link": {
    "description": 'When more follow: `</api/deadletters?...&before=N>; rel="next"`, the next page (same filters)',
    "schema": {"type": "string"}}}}}


@api_router.get("/deadletters", response_model=list[DeadLetterOut], tags=["operations"],
                responses=errors(401, 403, 422) | DEADLETTER_PAGE)
async def dead_letters(
    hub: HubDep,
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
    hub.dead_letters.flush()
    rows, cursor = hub.dead_letters.page(limit, Filter(reason or None, kind or None, since_ms, until_ms, before))
    if cursor is not None:
        url = request.url.remove_query_params("before").include_query_params(before=cursor)
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    return [DeadLetterOut(**row | {"received": iso(row["received"])}) for row in rows]


@api_router.get("/alerts", tags=["alerts"], responses=READ)
async def alerts(
    hub: HubDep,
    _user: Viewer,
    site: SiteQ = None,
    state: Literal["open", "acknowledged", "resolved"] | None = None,
    kind: KindQ = None,
    severity: Literal["critical", "major", "minor", "info"] | None = None,
    device: DeviceQ = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[dict[str, Any]]:
    """Alerts, newest first (contract section 4 payloads)."""
    found = hub.alert_store.find(limit, site=site, state=state, kind=kind, severity=severity, device=device)
    return [a.to_json() for a in found]


@api_router.post("/alerts/{alert_id}/ack", tags=["alerts"], responses=WRITE | errors(404, 409))
async def ack_alert(alert_id: IdPath, body: AlertActionIn, hub: HubDep, user: Maintenance) -> dict[str, Any]:
    """The caller has taken the alert, optionally with a note (who is the token's user, never the body's)."""
    return _audited(hub, user, "alert.ack", alert_id, body,
                    lambda: _transition(hub.alerts.ack, alert_id, user, body))


@api_router.post("/alerts/{alert_id}/resolve", tags=["alerts"], responses=WRITE | errors(404, 409))
async def resolve_alert(alert_id: IdPath, body: AlertActionIn, hub: HubDep, user: Maintenance) -> dict[str, Any]:
    """The problem is fixed, optionally with a note; by the token's user."""
    return _audited(hub, user, "alert.resolve", alert_id, body,
                    lambda: _transition(hub.alerts.resolve, alert_id, user, body))


def _transition(action: Callable[[str, str, str | None], Alert | None], alert_id: str, user: User,
                body: AlertActionIn) -> dict[str, Any]:
    try:
        alert = action(alert_id, user.name, body.note)
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
    user = hub.users.authenticate(given) if given else None
    if user is None:
        await websocket.close(code=4401, reason="a valid token is required")
        return
    whole = user.can("operator")
    sub = hub.bus.subscribe()
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
        hub.bus.unsubscribe(sub)


def _masked_live(data: bytes) -> str:
    """A live message as a viewer may see it: events with personal fields masked."""
    message = orjson.loads(data)
    if message.get("type") == "event":
        message["event"] = masked(message["event"], message["event"]["kind"])
    return orjson.dumps(message).decode()


async def _until_closed(websocket: WebSocket) -> None:
    """Return when the screen goes away (we ignore anything it sends)."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


@api_router.get("/reliability", tags=["alerts"], responses=READ)
async def reliability(
    hub: HubDep,
    _user: Viewer,
    kind: Annotated[str, Query(pattern=NAME)] = "elevator",
    site: SiteQ = None,
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


@api_router.get("/orders", tags=["work orders"], responses=READ)
async def orders(
    hub: HubDep,
    _user: Viewer,
    team: TextQ = None,
    state: Literal["open", "dispatched", "on_site", "resolved"] | None = None,
    site: SiteQ = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[dict[str, Any]]:
    """Work orders, newest first, with their deadlines and which of them are missed."""
    now_ms = int(time.time() * 1000)
    return [o.to_json(now_ms) for o in hub.desk.store.find(limit, team=team, state=state, site=site)]


@api_router.get("/orders/report", tags=["work orders"], responses=READ)
async def orders_report(hub: HubDep, _user: Viewer, days: Annotated[float, Query(gt=0, le=366)] = 30,
                        team: TextQ = None) -> dict[str, Any]:
    """Compliance per team: orders, and the share dispatched, on site and resolved in time."""
    now_ms = int(time.time() * 1000)
    found = hub.desk.store.find(100_000, since_ms=now_ms - int(days * 86_400_000), team=team)
    return {"days": days, "teams": report(found, now_ms)}


@api_router.post("/alerts/{alert_id}/order", tags=["work orders"], responses=WRITE | errors(404))
async def order_for_alert(alert_id: IdPath, body: OrderIn, hub: HubDep, user: Maintenance) -> dict[str, Any]:
    """Make an alert a work order (or return the one it has)."""

    def run() -> dict[str, Any]:
        alert = hub.alerts.find(alert_id)
        if alert is None:
            raise HTTPException(404, f"no alert {alert_id!r}")
        return hub.desk.open(alert, body.team, user.name).to_json(int(time.time() * 1000))

    return _audited(hub, user, "alert.order", alert_id, body, run)


@api_router.post("/orders/{order_id}/{action}", tags=["work orders"], responses=WRITE | errors(404, 409))
async def order_action(order_id: IdPath, action: Literal["dispatch", "arrive", "resolve"], body: OrderActionIn,
                       hub: HubDep, user: Maintenance) -> dict[str, Any]:
    """dispatch (to `assignee`, default the caller), arrive on site, resolve (closes the alert too); by the
    token's user."""
    return _audited(hub, user, f"order.{action}", order_id, body,
                    lambda: _order_action(hub, order_id, action, user.name, body))


def _order_action(hub: Hub, order_id: str, action: str, by: str, body: OrderActionIn) -> dict[str, Any]:
    try:
        if action == "dispatch":
            order = hub.desk.dispatch(order_id, body.assignee or by, by, body.note)
        elif action == "arrive":
            order = hub.desk.arrive(order_id, by, body.note)
        else:
            order = hub.desk.resolve(order_id, by, body.note)
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
    if order is None:
        raise HTTPException(404, f"no work order {order_id!r}")
    return order.to_json(int(time.time() * 1000))


def _audited(
    hub: Hub, user: User, action: str, target: str, body: BaseModel, run: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Do it, and record who did it and how it ended, whatever happens."""
    detail = body.model_dump(exclude_none=True)
    try:
        result = run()
    except HTTPException as exc:
        hub.audit.record(user.name, user.role, action, target, f"refused {exc.status_code}", detail)
        raise
    hub.audit.record(user.name, user.role, action, target, "ok", detail)
    return result


@api_router.post("/devices/{site}/{kind}/{device}/commands", tags=["devices"],
                 responses=WRITE | errors(404, 503, 504))
async def command(site: SitePath, kind: KindPath, device: DevicePath, body: CommandIn, hub: HubDep,
                  user: Operator) -> dict[str, Any]:
    """Send a command and return the device's reply (504 when none comes in time). Elevators and
    cameras take none: elevators are never driven remotely. Every attempt is audited."""
    target = f"{site}/{kind}/{device}"
    detail = {"op": body.op, "args": body.args}

    def refuse(status: int, why: str) -> HTTPException:
        hub.audit.record(user.name, user.role, "device.command", target, f"refused {status}", detail)
        return HTTPException(status, why)

    spec = hub.kinds.get(kind)
    if spec is None:
        raise refuse(404, f"unknown kind {kind!r}")
    if not spec.commands:
        raise refuse(403, f"{kind} devices take no commands" + (": elevators are never driven remotely"
                                                                if kind == "elevator" else ""))
    if body.op not in spec.commands:
        raise refuse(422, f"{kind} has no op {body.op!r}; ops: {', '.join(spec.commands)}")
    try:
        args = spec.commands[body.op].model_validate(body.args).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise refuse(422, f"bad args: {exc.errors(include_url=False)[0]['msg']}") from None
    try:
        reply = await hub.commands.send(site, kind, device, body.op, args)
    except TimeoutError:
        raise refuse(504, f"{target} did not answer within {hub.commands.timeout_s:.0f} s") from None
    except Exception as exc:  # noqa: BLE001 - the broker is away
        log.warning("command %s %s: the broker failed: %s: %s", target, body.op, type(exc).__name__, str(exc)[:500])
        raise refuse(503, "the broker cannot be reached; try again later") from None
    hub.audit.record(user.name, user.role, "device.command", target, "ok" if reply.get("ok") else "failed",
                     {**detail, "reply": reply})
    return reply


@api_router.get("/audit", tags=["operations"], responses=errors(401, 403, 422))
async def audit(hub: HubDep, _user: Admin, action: TextQ = None,
                limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> list[dict[str, Any]]:
    """Who did what, newest first: commands, alert and order actions, user changes."""
    return hub.audit.recent(limit, action)


@api_router.post("/users", tags=["operations"], response_model=UserOut, responses=WRITE)
async def add_user(body: UserIn, hub: HubDep, user: Admin) -> UserOut:
    """Create (or replace) a user; the token is shown once."""
    token = hub.users.add(body.name, body.role)
    hub.audit.record(user.name, user.role, "user.add", body.name, "ok", {"role": body.role})
    return UserOut(name=body.name, role=body.role, token=token)


@api_router.get("/series/traffic", tags=["series"], responses=READ | STORE)
async def traffic_series(hub: HubDep, _user: Viewer, site: SiteQ = None,
                         days_back: Annotated[int, Query(ge=0, le=30)] = 0) -> dict[str, Any]:
    """Vehicles in and out per hour over one day (0: today, 1: yesterday), China time."""
    day = series.china_day_start(int(time.time() * 1000)) - days_back * series.DAY_MS
    try:
        return await hub.screen_cache.get(("traffic", site, day),
                                          lambda: series.traffic(hub.storage, site, day, hub.settled))
    except StorageError as exc:
        raise store_unavailable(exc, "GET /api/series/traffic") from None


@api_router.get("/series/charging_power", tags=["series"], responses=READ | STORE)
async def charging_power_series(hub: HubDep, _user: Viewer, site: SiteQ = None,
                                hours: Annotated[int, Query(ge=1, le=168)] = 24,
                                every_s: Annotated[int, Query(ge=60, le=86400)] = 900) -> dict[str, Any]:
    """Total charging power over the last hours (each charger's mean per bucket, summed)."""
    try:
        return await hub.screen_cache.get(("charging_power", site, hours, every_s), lambda: series.charging_power(
            hub.storage, hub.registry, site, hours, every_s * 1000, hub.settled))
    except StorageError as exc:
        raise store_unavailable(exc, "GET /api/series/charging_power") from None


@api_router.get("/series/alerts", tags=["series"], responses=READ)
async def alerts_series(hub: HubDep, _user: Viewer, site: SiteQ = None,
                        days: Annotated[int, Query(ge=1, le=366)] = 30) -> dict[str, Any]:
    """Alerts opened per day, by severity."""

    async def compute() -> dict[str, Any]:
        return series.alerts_per_day(hub.alert_store, site, days)

    return await hub.screen_cache.get(("alerts", site, days), compute)  # type: ignore[no-any-return]


@api_router.get("/overview", tags=["overview"], responses=READ | STORE)
async def overview_figures(hub: HubDep, _user: Viewer, site: SiteQ = None) -> dict[str, Any]:
    """The big screen's figures: devices online and faulted per kind, today's vehicles, access and detections,
    alerts by state and severity, elevators in service, charging. Counts only, no personal data; answers are
    shared for `SMARTHUB_SCREEN_CACHE_S` (2 s)."""
    try:
        return await hub.screen_cache.get(("overview", site), lambda: overview.overview(
            hub.storage, hub.registry, hub.live, hub.alert_store, hub.inside, site, int(time.time() * 1000),
            hub.settled))
    except StorageError as exc:
        raise store_unavailable(exc, "GET /api/overview") from None
