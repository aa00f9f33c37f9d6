"""`GET /api/district` through a real hub and real Mosquitto: what devices publish becomes each community's tile,
worst first. The roll-up reads live state, the alert and order stores and the charging controller, never the
time-series store, so one backend is enough (the overview's tests run both)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hub.config import Settings
from tests.support.hub_fixtures import HubRun, eventually, running_hub
from tests.support.mqtt_fixtures import Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]

REGISTRY = """
[districts.xinhe]
zh = "新河街道"
en = "Xinhe Subdistrict"

[districts.empty]
zh = "空街道"

[sites.calm]
name = "平安小区"
name_en = "Calm Court"
district = "xinhe"

[sites.trapped]
name = "困人小区"
district = "xinhe"

[sites.busy]
name = "充电小区"
district = "xinhe"
power_cap_kw = 10

[sites.loner]
name = "独立小区"

[[devices]]
site = "calm"
kind = "elevator"
device = "e1"

[[devices]]
site = "calm"
kind = "elevator"
device = "e2"

[[devices]]
site = "trapped"
kind = "elevator"
device = "e1"

[[devices]]
site = "busy"
kind = "charger"
device = "c1"
max_current_a = 32

[[devices]]
site = "busy"
kind = "charger"
device = "c2"
max_current_a = 32
"""


async def district_of(run: HubRun, slug: str = "xinhe") -> dict[str, Any]:
    response = await run.api.get(f"/api/district/{slug}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def tiles(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["site"]: c for c in body["communities"]}


async def test_each_community_rolls_up_worst_first(settings_for: Callable[..., Settings], mosquitto: Broker,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    path.write_text(REGISTRY, encoding="utf-8")
    settings = settings_for("embedded", registry=path, screen_cache_s=0, dispatch_within_s=0.5)
    async with running_hub(settings, mosquitto) as run:
        quiet = await district_of(run)
        assert quiet["district"] == {"slug": "xinhe", "zh": "新河街道", "en": "Xinhe Subdistrict"}
        assert [(c["site"], c["score"]) for c in quiet["communities"]] == [
            ("calm", 80.0), ("trapped", 80.0), ("busy", 50.0)], \
            "nothing heard: all dark (50), no elevator in service (30 more); a tie goes by slug"

        messages: list[tuple[str, Any]] = [
            (run.topic("elevator", "e1", "telemetry", site="calm"), {"mode": "normal", "floor": 2}),
            (run.topic("elevator", "e2", "telemetry", site="calm"), {"mode": "normal", "floor": 5}),
            (run.topic("elevator", "e1", "telemetry", site="trapped"), {"mode": "normal", "floor": 7}),
            (run.topic("elevator", "e1", "event", site="trapped"),
             {"type": "fault", "code": "trapped_passenger", "active": True, "id": "t-1"}),
            (run.topic("charger", "c1", "telemetry", site="busy"), {"status": "charging", "power_kw": 7.0}),
            (run.topic("charger", "c2", "telemetry", site="busy"), {"status": "charging", "power_kw": 5.0}),
        ]
        await run.publish_many(messages)
        await eventually(lambda: sum(run.hub.pipeline.stats.accepted.values()) >= len(messages),
                         what="the messages")
        await eventually(lambda: run.hub.order_store.open(), what="the trapped passenger's work order")
        started = time.monotonic()
        body = await eventually(lambda: _when(district_of(run), lambda b: tiles(b)["trapped"]["overdue_orders"]),
                                timeout=10, what="the work order to be overdue")
        assert time.monotonic() - started < 10

        assert [c["site"] for c in body["communities"]] == ["trapped", "busy", "calm"]
        assert [c["rank"] for c in body["communities"]] == [1, 2, 3]
        by_site = tiles(body)
        trapped, busy, calm = by_site["trapped"], by_site["busy"], by_site["calm"]
        assert trapped["zh"] == "困人小区" and calm["en"] == "Calm Court"
        assert trapped["alerts"]["open"]["critical"] == 1 and trapped["overdue_orders"] == 1
        assert trapped["devices"] == {"total": 1, "online": 1, "faulted": 1}
        assert trapped["gauges"]["elevator_availability"] | {} == {
            "zh": "电梯可用率", "en": "Elevator availability", "unit": None, "value": 0, "of": 1, "share": 0.0,
            "strain": 1.0}
        assert calm["gauges"]["elevator_availability"]["share"] == 1.0 and calm["score"] == 0
        assert "charging_load" not in calm["gauges"]
        load = busy["gauges"]["charging_load"]
        assert (load["value"], load["of"], load["share"]) == (12.0, 10.0, 1.2), \
            "the chargers' draw against the orderly-charging allocator's headroom"
        assert load["strain"] == 1.0 and busy["score"] == 30.0
        assert "elevator_availability" not in busy["gauges"]
        assert body["totals"]["devices"] == {"total": 5, "online": 5, "faulted": 1}
        assert body["totals"]["overdue_orders"] == 1 and body["totals"]["communities"] == 3
        assert body["weights"]["severity"]["critical"] == 200

        overview = (await run.api.get("/api/overview", params={"site": "trapped"})).json()
        assert overview["elevators"]["availability"] == trapped["gauges"]["elevator_availability"]["share"]
        assert overview["alerts"]["open"] == trapped["alerts"]["open"], "the tile says what the site's wall says"

        every = (await run.api.get("/api/district")).json()
        assert [d["district"]["slug"] for d in every["districts"]] == ["xinhe", "empty"]
        assert every["districts"][0]["communities"] == body["communities"]
        assert every["districts"][1]["communities"] == [] and every["districts"][1]["district"]["en"] == "empty"
        assert all("loner" not in [c["site"] for c in d["communities"]] for d in every["districts"]), \
            "a site in no district is on no district wall"

        missing = await run.api.get("/api/district/nowhere")
        assert missing.status_code == 404 and "nowhere" in missing.json()["detail"]
        assert (await run.api.get("/api/district/NOT A SLUG")).status_code == 422
        assert (await run.api.get("/api/district", headers={"Authorization": ""})).status_code == 401
        viewer = run.hub.users.add("街道值班", "viewer")
        as_viewer = await run.api.get("/api/district/xinhe", headers={"Authorization": f"Bearer {viewer}"})
        assert as_viewer.status_code == 200


async def test_answers_are_shared_for_the_screen_cache_time(settings_for: Callable[..., Settings],
                                                            mosquitto: Broker, tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    path.write_text(REGISTRY, encoding="utf-8")
    async with running_hub(settings_for("embedded", registry=path, screen_cache_s=30), mosquitto) as run:
        first = await district_of(run)
        await run.publish(run.topic("elevator", "e1", "telemetry", site="calm"), {"mode": "normal"})
        await eventually(lambda: sum(run.hub.pipeline.stats.accepted.values()) == 1, what="the telemetry")
        again = await district_of(run)
        assert again == first, "within the cache time every screen gets the same answer"
        assert tiles(again)["calm"]["devices"]["online"] == 0


async def _when(answer: Any, check: Callable[[dict[str, Any]], Any]) -> dict[str, Any] | None:
    body = await answer
    return body if check(body) else None
