"""Alerts: the list, acknowledge and resolve (audited), and reliability from their history."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from devices import REGISTRY
from hub.alerts.models import Alert, TransitionError
from hub.alerts.reliability import by_device, measure
from hub.api.common import READ, WRITE, audited
from hub.api.deps import AlertsDep, AlertStoreDep, AuditDep, Maintenance, RegistryDep, Viewer
from hub.api.guard import GuardedRoute
from hub.api.schemas import (
    NAME,
    AlertActionIn,
    AlertOut,
    AlertState,
    DeviceQ,
    IdPath,
    KindQ,
    ReliabilityReportOut,
    Severity,
    SiteQ,
    errors,
)
from hub.users import User

router = APIRouter(prefix="/api", route_class=GuardedRoute, tags=["alerts"])
RELIABILITY_KIND = next((k.name for k in REGISTRY.values() if k.reliability_default), None)
"""The kind `/api/reliability` reports when the caller names none (`DeviceKind.reliability_default`)."""


@router.get("/alerts", response_model=list[AlertOut], responses=READ)
async def alerts(
    store: AlertStoreDep,
    _user: Viewer,
    site: SiteQ = None,
    state: AlertState | None = None,
    kind: KindQ = None,
    severity: Severity | None = None,
    device: DeviceQ = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[dict[str, Any]]:
    """Alerts, newest first (contract section 4 payloads)."""
    found = store.find(limit, site=site, state=state, kind=kind, severity=severity, device=device)
    return [a.to_json() for a in found]


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut, responses=WRITE | errors(404, 409))
async def ack_alert(alert_id: IdPath, body: AlertActionIn, engine: AlertsDep, audit: AuditDep,
                    user: Maintenance) -> dict[str, Any]:
    """The caller has taken the alert, optionally with a note (who is the token's user, never the body's)."""
    return audited(audit, user, "alert.ack", alert_id, body, lambda: _transition(engine.ack, alert_id, user, body))


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut, responses=WRITE | errors(404, 409))
async def resolve_alert(alert_id: IdPath, body: AlertActionIn, engine: AlertsDep, audit: AuditDep,
                        user: Maintenance) -> dict[str, Any]:
    """The problem is fixed, optionally with a note; by the token's user."""
    return audited(audit, user, "alert.resolve", alert_id, body,
                   lambda: _transition(engine.resolve, alert_id, user, body))


def _transition(action: Callable[[str, str, str | None], Alert | None], alert_id: str, user: User,
                body: AlertActionIn) -> dict[str, Any]:
    try:
        alert = action(alert_id, user.name, body.note)
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id!r}")
    return alert.to_json()


@router.get("/reliability", response_model=ReliabilityReportOut, responses=READ)
async def reliability(
    store: AlertStoreDep,
    registry: RegistryDep,
    _user: Viewer,
    kind: Annotated[str, Query(pattern=NAME)] = RELIABILITY_KIND,  # type: ignore[assignment]
    site: SiteQ = None,
    days: Annotated[float, Query(gt=0, le=366)] = 30,
) -> dict[str, Any]:
    """Failures, MTTR, MTBF and availability per device and per site over the last `days`.

    Devices without failures in the window are listed with availability 1."""
    end_ms = int(time.time() * 1000)
    start_ms = end_ms - int(days * 86_400_000)
    alerts = [a for a in store.find(100_000, site=site, kind=kind) if (a.resolved_ms or end_ms) > start_ms]
    per_device = by_device(alerts, start_ms, end_ms)
    devices = [d for d in registry if d.kind == kind and (site is None or d.site == site)]
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
