"""Probes and scrapers: health and Prometheus metrics, without a token."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response

from hub.api.deps import HealthDep, MetricsDep
from hub.api.guard import GuardedRoute
from hub.api.schemas import HealthOut
from hub.metrics import render

router = APIRouter(route_class=GuardedRoute, tags=["operations"])


@router.get("/api/health", response_model=HealthOut, responses={
    200: {"description": "Ingest is receiving (status ok, or degraded: e.g. the store is down and the outbox buffers)"},
    503: {"model": HealthOut, "description": "Ingest is not receiving: broker lost past SMARTHUB_BROKER_GRACE_S, "
          "a hub task not running, the store down with the outbox near its cap, or MQTT held (back-pressure)"}})
async def health(view: HealthDep, response: Response) -> HealthOut:
    """Is the hub receiving, and how is each part (broker, store, outbox, tasks) since when. Answers at once:
    it reads what the hub last knew (the writer, the MQTT link, the health watcher's store probe) and never
    waits for the store or the broker."""
    report = view.watch.report()
    response.status_code = report.http_status
    return HealthOut.of(report, view.mqtt.connected, view.storage.name, view.outbox.depth,
                        round(time.time() - view.started_at, 1))


@router.get("/metrics", response_class=Response)
async def metrics(collectors: MetricsDep) -> Response:
    """Prometheus text format."""
    return Response(render(collectors), media_type="text/plain; version=0.0.4; charset=utf-8")
