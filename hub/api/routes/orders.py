"""Work orders (工单): the list, the compliance report, and the actions on them (audited)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from hub.alerts.desk import OrderDesk
from hub.alerts.models import TransitionError
from hub.alerts.orders import report
from hub.api.common import READ, WRITE, audited
from hub.api.deps import AlertsDep, AuditDep, DeskDep, Maintenance, OrderStoreDep, Viewer
from hub.api.guard import GuardedRoute
from hub.api.schemas import (
    IdPath,
    OrderActionIn,
    OrderIn,
    OrderOut,
    OrdersReportOut,
    OrderState,
    SiteQ,
    TextQ,
    errors,
)

router = APIRouter(prefix="/api", route_class=GuardedRoute, tags=["work orders"])


@router.get("/orders", response_model=list[OrderOut], responses=READ)
async def orders(
    store: OrderStoreDep,
    _user: Viewer,
    team: TextQ = None,
    state: OrderState | None = None,
    site: SiteQ = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[dict[str, Any]]:
    """Work orders, newest first, with their deadlines and which of them are missed."""
    now_ms = int(time.time() * 1000)
    return [o.to_json(now_ms) for o in store.find(limit, team=team, state=state, site=site)]


@router.get("/orders/report", response_model=OrdersReportOut, responses=READ)
async def orders_report(store: OrderStoreDep, _user: Viewer, days: Annotated[float, Query(gt=0, le=366)] = 30,
                        team: TextQ = None) -> dict[str, Any]:
    """Compliance per team: orders, and the share dispatched, on site and resolved in time."""
    now_ms = int(time.time() * 1000)
    found = store.find(100_000, since_ms=now_ms - int(days * 86_400_000), team=team)
    return {"days": days, "teams": report(found, now_ms)}


@router.post("/alerts/{alert_id}/order", response_model=OrderOut, responses=WRITE | errors(404))
async def order_for_alert(alert_id: IdPath, body: OrderIn, engine: AlertsDep, desk: DeskDep, audit: AuditDep,
                          user: Maintenance) -> dict[str, Any]:
    """Make an alert a work order (or return the one it has)."""

    def run() -> dict[str, Any]:
        alert = engine.find(alert_id)
        if alert is None:
            raise HTTPException(404, f"no alert {alert_id!r}")
        return desk.open(alert, body.team, user.name).to_json(int(time.time() * 1000))

    return audited(audit, user, "alert.order", alert_id, body, run)


@router.post("/orders/{order_id}/{action}", response_model=OrderOut, responses=WRITE | errors(404, 409))
async def order_action(order_id: IdPath, action: Literal["dispatch", "arrive", "resolve"], body: OrderActionIn,
                       desk: DeskDep, audit: AuditDep, user: Maintenance) -> dict[str, Any]:
    """dispatch (to `assignee`, default the caller), arrive on site, resolve (closes the alert too); by the
    token's user."""
    return audited(audit, user, f"order.{action}", order_id, body,
                   lambda: _order_action(desk, order_id, action, user.name, body))


def _order_action(desk: OrderDesk, order_id: str, action: str, by: str, body: OrderActionIn) -> dict[str, Any]:
    try:
        if action == "dispatch":
            order = desk.dispatch(order_id, body.assignee or by, by, body.note)
        elif action == "arrive":
            order = desk.arrive(order_id, by, body.note)
        else:
            order = desk.resolve(order_id, by, body.note)
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
    if order is None:
        raise HTTPException(404, f"no work order {order_id!r}")
    return order.to_json(int(time.time() * 1000))
