"""An incident worked as a whole from the pages, in a real headless Chromium against a real hub: the wall's
one line acknowledges every alert of it, the phone's one card resolves it with its work order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from hub.config import Settings
from tests.support.browser import chromium, served_hub
from tests.support.hub_fixtures import ADMIN_TOKEN, eventually
from tests.support.mqtt_fixtures import Broker


async def none_of(locator: Any) -> bool:
    """True once the page shows no element of `locator` (a redraw may still be on its way)."""
    return await locator.count() == 0

pytestmark = [pytest.mark.integration, pytest.mark.services, pytest.mark.usefixtures("playwright_available"),
              pytest.mark.timeout(240)]


async def test_the_wall_acknowledges_an_incident_and_the_phone_resolves_it(
        settings_for: Callable[..., Settings], mosquitto: Broker) -> None:
    settings = settings_for("embedded")
    async with served_hub(settings, mosquitto) as served, chromium() as open_screen:
        hub = served.hub
        camera, [door] = next((d.device, d.sees) for d in hub.registry if d.kind == "camera" and d.sees)
        screen = await open_screen(f"{served.url}/?token={ADMIN_TOKEN}")
        await screen.wait_ready(60, panels=("alerts",))
        phone = await open_screen(f"{served.url}/m?token={ADMIN_TOKEN}&name=王师傅")
        await phone.page.wait_for_function("window.pageReady")
        topic = f"{settings.root}/sunshine/{{}}/{{}}/event".format
        mosquitto.publish(topic("access", door), orjson.dumps({"type": "fault", "code": "door_forced", "active": True}))
        mosquitto.publish(topic("camera", camera), orjson.dumps({"type": "fault", "code": "tamper", "active": True}))

        def the_incident() -> str | None:  # the demo's registry: the camera sees the door, so one incident
            found = [i for i in hub.incidents.active.values() if i.title_en == "Door forced open"
                     and {p.device for p in i.parts if p.source == "alert"} == {door, camera} and i.orders]
            return found[0].id if found else None

        incident_id = await eventually(the_incident, timeout=10, what="one incident of both alerts, with its order")
        line = screen.page.locator("[data-panel=alerts] .alert", has_text="强行开门")
        await line.locator("button[data-ack]").click()  # one line, one tap: both alerts
        await eventually(lambda: {hub.alerts.find(ref).state for ref in hub.incidents.get(incident_id).alerts}  # type: ignore[union-attr]
                         == {"acknowledged"}, what="both alerts acknowledged")
        await line.filter(has_text="已受理 admin").wait_for(timeout=10_000)
        tamper_lines = screen.page.locator("[data-panel=alerts] .alert", has_text="遮挡")
        await eventually(lambda: none_of(tamper_lines), what="one line for the incident, no line of the tamper alert")

        card = phone.page.locator(".card", has_text="强行开门")
        await card.filter(has_text="处理人 admin").wait_for(timeout=10_000)
        await eventually(lambda: none_of(card.locator("button", has_text="受理整个事件")),
                         what="no acknowledge button on an acknowledged incident")
        await card.locator("textarea").fill("门锁已修好")
        await card.locator("button", has_text="事件已处理").click()
        await eventually(lambda: incident_id not in hub.incidents.active, what="the incident resolved")
        done = hub.incidents.get(incident_id)
        assert done is not None and done.state == "resolved" and done.people == ("admin",)
        assert (done.timeline[-1].action, done.timeline[-1].text) == ("incident resolved", "门锁已修好")
        [order_id] = done.orders
        assert hub.desk.store.get(order_id).state == "resolved"  # type: ignore[union-attr]
        await card.wait_for(state="detached", timeout=10_000)
        await line.wait_for(state="detached", timeout=10_000)
        assert screen.errors == [], screen.errors
        assert not [e for e in phone.errors if "pageerror" in e], phone.errors
