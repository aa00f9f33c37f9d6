"""The response models change no answer: each route's JSON over HTTP has the same keys, values and JSON types as
what the route's function returns itself (no key dropped, no null added, no 0 turned into 0.0), for an
operator and for a viewer (masked plates stay strings)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from devices.charging_control import PlanIn
from hub.api.deps import ScreenSources
from hub.api.routes import alerts, audit, events, orders, overview, screen, series
from hub.config import Settings
from tests.support.hub_fixtures import HubRun, eventually, running_hub, seed_examples
from tests.support.mqtt_fixtures import Broker

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


async def test_the_charging_answer_passes_through_unchanged(
    settings_for: Callable[..., Settings], mosquitto: Broker, tmp_path: Path
) -> None:
    """`GET /api/charging/{site}` (a controller's route, which the embedded hub above has no site for): a site
    with a capacity, a car charging under a plan and an idle charger, nulls included."""
    registry = tmp_path / "registry.toml"
    registry.write_text('[sites.sunshine]\npower_cap_kw = 20.0\n' + "".join(
        f'\n[[devices]]\nsite = "sunshine"\nkind = "charger"\ndevice = "{c}"\n' for c in ("c1", "c2")),
        encoding="utf-8")
    settings = settings_for("embedded", registry=registry, charging_period_s=600.0, charging_debounce_s=0.1)
    async with running_hub(settings, mosquitto) as run:
        controller = next(c for _, c in run.hub.controllers if c.name == "orderly-charging")
        await run.publish_many([
            (run.topic("charger", "c1", "event"), {"type": "session_start", "id": "s1", "session": "S1",
                                                   "connector": 1, "id_tag": "tag-1", "meter_start_kwh": 1.0}),
            (run.topic("charger", "c1", "telemetry"), {"status": "charging", "power_kw": 3.0, "energy_kwh": 2.5}),
            (run.topic("charger", "c2", "telemetry"), {"status": "available", "power_kw": 0.0})])
        await eventually(lambda: ("sunshine", "c2") in controller.seen, what="both chargers heard")  # type: ignore[attr-defined]
        put = await run.api.put("/api/charging/sunshine/c1/plan", json={"energy_kwh": 20.0, "deferrable": False})
        assert put.status_code == 200, put.text
        assert shape(put.json()) == shape(as_json(controller.set_plan(  # type: ignore[attr-defined]
            "sunshine", "c1", PlanIn(energy_kwh=20.0)).model_dump()))

        async def plan_used() -> Any:
            answer = controller.answer("sunshine")  # type: ignore[attr-defined]
            return answer if answer is not None and answer.connectors[0].plan is not None else None

        await eventually(plan_used, what="a round with the plan")
        await asyncio.sleep(0.5)  # no round in between the two reads below: nothing changes any more
        response = await run.api.get("/api/charging/sunshine")
        assert response.status_code == 200, response.text
        expected = as_json(controller.answer("sunshine").model_dump())  # type: ignore[attr-defined]
        assert shape(response.json()) == shape(expected)
        assert response.json() == expected
        assert response.json()["connectors"][1]["plan"] is None and response.json()["connectors"][1]["soc_pct"] is None
