"""The district wall (`/?district=SLUG`) in real headless Chromium, against a real hub on real HTTP fed through
real Mosquitto: community tiles drawn worst first in Chinese, a new critical alert moving its community to the
top live, the English toggle, and a tile opening that community's own wall."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from hub.alerts.models import HUB_FAULTS
from hub.config import Settings
from tests.support.browser import ARTIFACTS, ServedHub, chromium
from tests.support.hub_fixtures import ADMIN_TOKEN, eventually, hub_settings
from tests.support.mqtt_fixtures import Broker, publish_many, start_mosquitto
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.services, pytest.mark.usefixtures("playwright_available"),
              pytest.mark.timeout(240)]

SITES = {"calm": ("平安小区", "Calm Court"), "trapped": ("困人小区", "Trapped Court"),
         "dark": ("黑灯小区", "Dark Court")}


def registry() -> str:
    lines = ['[districts.xinhe]', 'zh = "新河街道"', 'en = "Xinhe Subdistrict"', ""]
    for slug, (zh, en) in SITES.items():
        lines += [f"[sites.{slug}]", f'name = "{zh}"', f'name_en = "{en}"', 'district = "xinhe"', ""]
    for slug in SITES:
        for i in (1, 2):
            lines += ["[[devices]]", f'site = "{slug}"', 'kind = "elevator"', f'device = "e{i}"', ""]
    return "\n".join(lines)


def publish(broker: Broker, root: str, messages: list[tuple[str, str, str, dict[str, object]]]) -> None:
    publish_many([(f"{root}/{site}/elevator/{device}/{channel}", orjson.dumps(body))
                  for site, device, channel, body in messages], broker)


async def test_the_district_wall_shows_communities_worst_first(mosquitto: Broker, root: str, tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    path.write_text(registry(), encoding="utf-8")
    settings: Settings = hub_settings(mosquitto, root, tmp_path / "data", registry=path)
    served = ServedHub(settings, None, free_port())
    await served.start()
    try:
        assert served.hub is not None
        normal = {"mode": "normal", "floor": 1}
        await asyncio.to_thread(publish, mosquitto, root, [
            *[(s, f"e{i}", "telemetry", normal) for s in ("calm", "trapped") for i in (1, 2)],
            ("trapped", "e1", "event", {"type": "fault", "code": "trapped_passenger", "active": True, "id": "t1"}),
        ])
        hub = served.hub
        await eventually(lambda: any(a.site == "trapped" for a in hub.alert_store.active()), timeout=10,
                         what="the trapped passenger's alert")
        async with served.api() as api:
            expected = [c["site"] for c in (await api.get("/api/district/xinhe")).json()["communities"]]
        assert expected == ["trapped", "dark", "calm"], "a critical alert, then a dark community, then all well"

        async with chromium() as open_screen:
            wall = await open_screen(f"{served.url}/?district=xinhe&token={ADMIN_TOKEN}")
            await wall.page.wait_for_function("window.districtState && window.districtState.ready", timeout=30_000)
            order = await wall.page.locator(".ctile").evaluate_all("tiles => tiles.map(t => t.dataset.site)")
            assert order == expected, "tiles in the hub's worst-first order"
            names = await wall.page.locator(".ctile .name").all_inner_texts()
            assert names == [SITES[s][0] for s in expected], "Chinese names first"
            assert await wall.page.inner_text("header h1") == "街道联动指挥中心"
            assert "新河街道" in await wall.page.inner_text("#district-name")
            first = wall.page.locator(".ctile").first
            assert "s-critical" in (await first.get_attribute("class") or "")
            first_text = await first.inner_text()
            assert "电梯可用率" in first_text and "紧急" in first_text and "#1" in first_text, first_text
            assert await first.get_attribute("href") == "/?site=trapped"
            assert await wall.page.is_hidden("#stale"), "a live hub: no stale banner"
            await wall.page.wait_for_function("document.querySelector('#chart-ranking canvas')", timeout=10_000)
            await wall.page.wait_for_timeout(800)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await wall.page.screenshot(path=str(ARTIFACTS / "district.png"))

            # live: a passenger trapped in the calm community too, and both cars of the dark one heard; the wall
            # follows without a reload (WS /api/live says an alert changed, then it asks again)
            await asyncio.to_thread(publish, mosquitto, root, [
                *[("dark", f"e{i}", "telemetry", normal) for i in (1, 2)],
                ("calm", "e2", "event", {"type": "fault", "code": "trapped_passenger", "active": True, "id": "t2"}),
                ("calm", "e1", "event", {"type": "fault", "code": "overspeed", "active": True, "id": "o1"}),
            ])
            await wall.page.wait_for_function(
                "JSON.stringify(window.districtState.order) === JSON.stringify(['calm', 'trapped', 'dark'])",
                timeout=15_000)
            assert [s for s in await wall.page.locator(".ctile").evaluate_all(
                "tiles => tiles.map(t => t.dataset.site)")] == ["calm", "trapped", "dark"]

            await wall.page.click("header .lang-toggle")
            assert await wall.page.inner_text("header h1") == "District Joint Command Center"
            english = await wall.page.locator(".ctile .name").all_inner_texts()
            assert english == ["Calm Court", "Trapped Court", "Dark Court"]
            assert "Elevator availability" in await wall.page.locator(".ctile").first.inner_text()
            assert await wall.page.locator(".ctile").first.get_attribute("href") == "/?site=calm&lang=en"
            await wall.page.click("header .lang-toggle")

            await wall.page.locator(".ctile[data-site=trapped]").click()
            await wall.page.wait_for_url("**/?site=trapped")
            await wall.page.wait_for_function("window.screenState && window.screenState.resyncs > 0", timeout=30_000)
            await wall.page.wait_for_function(
                "document.querySelector('#site-name').textContent === '困人小区'", timeout=10_000)
            assert not [e for e in wall.errors if "pageerror" in e], wall.errors
    finally:
        await served.stop()


async def test_an_unknown_district_says_so(mosquitto: Broker, root: str, tmp_path: Path) -> None:
    served = ServedHub(hub_settings(mosquitto, root, tmp_path / "data"), None, free_port())
    await served.start()
    try:
        async with chromium() as open_screen:
            wall = await open_screen(f"{served.url}/?district=nowhere&token={ADMIN_TOKEN}")
            await wall.page.wait_for_function("window.districtState && window.districtState.ready", timeout=30_000)
            assert "未找到街道 nowhere" in await wall.page.inner_text("#communities")
            assert await wall.page.locator(".ctile").count() == 0
            assert not [e for e in wall.errors if "pageerror" in e], wall.errors
    finally:
        await served.stop()


async def test_the_district_wall_says_its_data_is_stale_while_the_broker_is_gone(root: str, tmp_path: Path) -> None:
    """As the community wall: the hub's own word (GET /api/health 503) raises the banner, with since when."""
    broker = start_mosquitto(tmp_path / "mqtt")  # our own, to stop
    path = tmp_path / "registry.toml"
    path.write_text(registry(), encoding="utf-8")
    served = ServedHub(hub_settings(broker, root, tmp_path / "data", registry=path, broker_grace_s=2.0), None,
                       free_port())
    await served.start()
    try:
        async with chromium() as open_screen:
            wall = await open_screen(f"{served.url}/?district=xinhe&token={ADMIN_TOKEN}")
            await wall.page.wait_for_function("window.districtState && window.districtState.ready", timeout=30_000)
            await wall.page.wait_for_timeout(3_500)  # a health poll
            assert await wall.page.is_hidden("#stale")
            broker.service.stop()
            await wall.page.wait_for_selector("#stale:not(.hidden)", timeout=20_000)
            text = await wall.page.inner_text("#stale")
            assert "数据已停止更新" in text and HUB_FAULTS["broker_lost"].zh in text, text
            assert (await wall.page.evaluate("window.districtState.staleSince")) is not None
            await wall.page.click("header .lang-toggle")
            assert "Data stale since" in await wall.page.inner_text("#stale")
            assert not [e for e in wall.errors if "pageerror" in e], wall.errors
    finally:
        broker.service.stop()
        await served.stop()
