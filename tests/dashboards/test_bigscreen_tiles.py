"""The big screen draws any kind: a generic tile per kind without a panel of its own, titled from the catalog,
with its devices online, faulted and the figures its module declares. The simulated community's meters get
one, and so does a kind this test alone registers (`devices.register`), with no file of the page touched."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
import pytest

import devices
from devices.base import DeviceKind, DevicePayload, FaultSpec, LiveDevice, OverviewSection, Severity
from hub.config import Settings
from tests.support.browser import Screen, chromium, served_hub
from tests.support.hub_fixtures import ADMIN_TOKEN, eventually
from tests.support.mqtt_fixtures import Broker

pytestmark = [pytest.mark.integration, pytest.mark.services, pytest.mark.usefixtures("playwright_available"),
              pytest.mark.timeout(240)]

NAME = "pump"


class Telemetry(DevicePayload):
    running: bool | None = None


def running(pumps: Sequence[LiveDevice], sites: Sequence[Any]) -> dict[str, Any]:
    return {"pumps_running": sum(p.online and p.telemetry.get("running") is True for p in pumps)}


KIND = DeviceKind(name=NAME, zh="水泵", en="Water pump", telemetry=Telemetry, events=(),
                  faults={"dry_run": FaultSpec(Severity.CRITICAL, "干转", "Running dry")}, commands={},
                  no_commands="a test kind", overview=OverviewSection("pumps", live=running),
                  examples={"telemetry": ({"running": True},)})


@pytest.fixture(autouse=True)
def pump_kind() -> Iterator[DeviceKind]:
    devices.register(KIND)
    try:
        yield KIND
    finally:
        devices.unregister(NAME)


async def tile_text(screen: Screen, kind: str) -> str:
    return await screen.page.locator(f"[data-panel=tiles] .tile[data-kind={kind}]").inner_text()  # type: ignore[no-any-return]


async def test_meters_and_a_kind_added_by_a_test_get_tiles(settings_for: Callable[..., Settings],
                                                           mosquitto: Broker) -> None:
    settings = settings_for("embedded")
    async with served_hub(settings, mosquitto) as served, chromium() as open_screen:
        assert served.community is not None and served.hub is not None
        meters = served.community.of("meter")
        assert meters, "the simulated community has meters"
        for device, body in (("p1", {"online": True}), ("p2", {"online": True})):
            mosquitto.publish(f"{settings.root}/sunshine/{NAME}/{device}/state", orjson.dumps(body))
        mosquitto.publish(f"{settings.root}/sunshine/{NAME}/p1/telemetry", orjson.dumps({"running": True}))
        mosquitto.publish(f"{settings.root}/sunshine/{NAME}/p2/event", orjson.dumps(
            {"type": "fault", "code": "dry_run", "active": True, "id": "f-1"}))
        await eventually(lambda: len(served.hub.alert_store.find(10, kind=NAME)) == 1,  # type: ignore[union-attr]
                         what="the pump's fault")

        screen = await open_screen(f"{served.url}/?token={ADMIN_TOKEN}")
        await screen.wait_ready(60)
        assert await screen.page.get_attribute("[data-panel=tiles]", "data-filled") == "1"
        kinds = await screen.page.locator("[data-panel=tiles] .tile").evaluate_all("t => t.map(e => e.dataset.kind)")
        assert sorted(kinds) == sorted(["meter", NAME]), "a tile for each kind without a panel, and only those"

        async with served.api() as api:
            meter = (await api.get("/api/overview")).json()["kinds"]["meter"]
        text = await tile_text(screen, "meter")
        assert text.startswith("水电表"), text
        assert re.search(rf"\d+\s*/\s*{meter['total']}\b", text), text
        assert meter["total"] == len(meters)
        for label in ("故障", "水表在线", "电表在线", "疑似漏水"):
            assert label in text, (label, text)

        pump = await tile_text(screen, NAME)
        assert pump.startswith("水泵") and re.search(r"2\s*/\s*2", pump), pump
        assert re.search(r"故障\s*1", pump), pump
        assert re.search(r"pumps running\s*1", pump), "a figure without a word of the page's is named readably"
        assert await screen.page.locator(f".tile[data-kind={NAME}].alarm").count() == 1
        await screen.shot("tiles-zh")

        # The panels keep their places on the 1920x1080 canvas: nothing pushed below its bottom.
        bottom = await screen.page.evaluate(
            "Math.max(...[...document.querySelectorAll('[data-panel]')].map(p => p.getBoundingClientRect().bottom))")
        assert bottom <= 1080, bottom

        await screen.page.click("header .lang-toggle")
        await screen.page.locator(f".tile[data-kind={NAME}]", has_text="Water pump").wait_for(timeout=5_000)
        english = await tile_text(screen, "meter")
        assert english.startswith("Household meter") and "Open leaks" in english, english
        await screen.shot("tiles-en")
        assert screen.errors == [], screen.errors
        assert (await screen.state())["errors"] == []
