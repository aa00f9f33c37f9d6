"""The response models change no answer: each route's JSON over HTTP has the same keys, values and JSON types as
what the route's function returns itself (no key dropped, no null added, no 0 turned into 0.0), for an
operator and for a viewer (masked plates stay strings)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from hub.api.deps import ScreenSources
from hub.api.routes import alerts, audit, events, orders, overview, screen, series
from tests.support.hub_fixtures import HubRun, seed_examples

pytestmark = [pytest.mark.integration, pytest.mark.services]


def shape(value: Any) -> Any:
    """Keys and JSON types, recursively (bool before int: it is one in Python)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def as_json(value: Any) -> Any:
    return json.loads(orjson.dumps(value))


async def test_models_pass_every_answer_through_unchanged(embedded_hub: HubRun) -> None:
    run = embedded_hub
    await seed_examples(run)
    alert = run.hub.alert_store.find(1)[0]
    admin = run.hub.users.authenticate("test-admin-token")
    assert admin is not None
    assert (await run.api.post(f"/api/alerts/{alert.id}/ack", json={"note": "on it"})).status_code == 200
    assert (await run.api.post(f"/api/alerts/{alert.id}/order", json={})).status_code == 200
    viewer_token = run.hub.users.add("v-models", "viewer")
    viewer = run.hub.users.authenticate(viewer_token)
    hub = run.hub
    screen_sources = ScreenSources.of(hub)
    cases = [
        ("/api/events?limit=500", lambda u: events.events(hub.kinds, hub.storage, u, limit=500), True),
        ("/api/alerts", lambda u: alerts.alerts(hub.alert_store, u), True),
        ("/api/reliability?days=30", lambda u: alerts.reliability(hub.alert_store, hub.registry, u, days=30.0), False),
        ("/api/orders", lambda u: orders.orders(hub.order_store, u), True),
        ("/api/orders/report?days=30", lambda u: orders.orders_report(hub.order_store, u, days=30.0), True),
        ("/api/audit", lambda u: audit.audit(hub.audit, u), True),
        ("/api/series/traffic", lambda u: series.traffic_series(screen_sources, u), True),
        ("/api/series/charging_power", lambda u: series.charging_power_series(screen_sources, u), False),
        ("/api/series/alerts", lambda u: series.alerts_series(screen_sources, u), True),
        ("/api/overview", lambda u: overview.overview_figures(screen_sources, u), False),
        ("/api/catalog", lambda u: screen.catalog(hub.kinds, hub.registry, u), True),
    ]
    for user, token in ((admin, "test-admin-token"), (viewer, viewer_token)):
        for path, direct, same_values in cases:
            if path == "/api/audit" and user is viewer:
                continue
            response = await run.api.get(path, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, (path, response.text)
            expected = as_json(await direct(user))
            assert shape(response.json()) == shape(expected), path
            if same_values:
                assert response.json() == expected, path
    rows = (await run.api.get("/api/events?kind=gate&type=passage",
                              headers={"Authorization": f"Bearer {viewer_token}"})).json()
    assert rows and all(isinstance(r["plate"], str) and "*" in r["plate"] for r in rows), "viewers see masked plates"
    assert any("error" not in r and "seq" not in r for r in (await run.api.get("/api/events")).json()), \
        "optional fields left out stay out"
