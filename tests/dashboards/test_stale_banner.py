"""The wall and the phone page say plainly that their data is stale while the hub cannot receive.

Real Chromium, a real hub on real HTTP, its own Mosquitto really stopped: the pages' WebSocket and REST
calls keep working (the hub is up), so only the hub's own word (GET /api/health 503) can raise the banner.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hub.alerts.models import HUB_FAULTS
from tests.support.browser import ARTIFACTS, chromium, served_hub
from tests.support.hub_fixtures import ADMIN_TOKEN, hub_settings
from tests.support.mqtt_fixtures import start_mosquitto
from tests.support.processes import Service, port_open, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.services, pytest.mark.usefixtures("playwright_available"),
              pytest.mark.timeout(240)]
GRACE_S = 2.0
HEALTH_POLL_S = 3.0
"""HEALTH_MS of the pages."""


async def test_a_stale_data_banner_while_the_broker_is_gone(root: str, tmp_path: Path) -> None:
    broker = start_mosquitto(tmp_path / "mqtt")  # our own, to stop
    settings = hub_settings(broker, root, tmp_path / "data", broker_grace_s=GRACE_S)
    try:
        async with served_hub(settings, broker) as served, chromium() as open_screen:
            wall = await open_screen(f"{served.url}/?token={ADMIN_TOKEN}")
            await wall.wait_ready(60)
            phone = await open_screen(f"{served.url}/m?token={ADMIN_TOKEN}&name=王师傅")
            await phone.page.set_viewport_size({"width": 390, "height": 844})
            await phone.page.wait_for_function("window.pageReady && window.pageState")
            await wall.page.wait_for_timeout(HEALTH_POLL_S * 1000)
            assert (await wall.state())["stale"] is False and await wall.page.is_hidden("#stale")
            assert await phone.page.is_hidden("#stale")

            stopped = time.monotonic()
            broker.service.stop()
            await wall.page.wait_for_selector("#stale:not(.hidden)", timeout=20_000)
            shown_after = time.monotonic() - stopped
            await phone.page.wait_for_selector("#stale:not(.hidden)", timeout=10_000)
            assert shown_after < GRACE_S + HEALTH_POLL_S + 3, f"banner only after {shown_after:.1f} s"
            text = await wall.page.inner_text("#stale")
            assert "数据已停止更新" in text and HUB_FAULTS["broker_lost"].zh in text, text
            assert (await wall.state())["staleSince"] is not None
            phone_text = await phone.page.inner_text("#stale")
            assert "数据已停止更新" in phone_text and HUB_FAULTS["broker_lost"].zh in phone_text, phone_text
            await wall.shot("stale")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await phone.page.screenshot(path=str(ARTIFACTS / "maintenance-stale.png"))
            await wall.page.click("header .lang-toggle")
            english = await wall.page.inner_text("#stale")
            assert "Data stale since" in english and HUB_FAULTS["broker_lost"].en in english, english
            await wall.page.click("header .lang-toggle")
            print(f"banner shown {shown_after:.1f} s after the broker stopped (grace {GRACE_S} s)")

            broker.service = Service(broker.service.argv, broker.dir / "mosquitto.log")
            wait_until(lambda: port_open(broker.port), what="mosquitto to listen again")
            await wall.page.wait_for_selector("#stale.hidden", state="attached", timeout=45_000)
            await phone.page.wait_for_selector("#stale.hidden", state="attached", timeout=10_000)
            assert (await wall.state())["stale"] is False
            assert not [e for e in wall.errors if "pageerror" in e], wall.errors
            assert not [e for e in phone.errors if "pageerror" in e], phone.errors
    finally:
        broker.service.stop()

