"""The hub's alert fan-out, with a real broker: one receiver that raises is logged and counted, and the others
(the notifier, the live bus, the work-order desk) still hear every alert and order change."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest

from hub.config import Settings
from hub.events import AlertChanged, OrderChanged
from tests.support.hub_fixtures import eventually, running_hub
from tests.support.mqtt_fixtures import Broker, read_retained

pytestmark = [pytest.mark.integration, pytest.mark.services]


async def test_a_failing_alert_receiver_skips_neither_the_notifier_the_live_bus_nor_the_desk(
        settings_for: Callable[..., Settings], mosquitto: Broker) -> None:
    async with running_hub(settings_for("embedded"), mosquitto) as run:
        hub = run.hub
        failures: list[str] = []

        def broken(event: AlertChanged | OrderChanged) -> None:
            failures.append(type(event).__name__)
            raise RuntimeError("a receiver with a bug")

        hub.events.on(AlertChanged, "broken", broken, before="notifier")  # first of all, as the notifier was
        hub.events.on(OrderChanged, "broken", broken, before="live-bus")
        screen = hub.bus.subscribe()
        await run.publish(run.topic("elevator", "b1-el1", "event"),
                          {"type": "fault", "code": "trapped_passenger", "active": True, "id": "t1"})

        orders = await eventually(lambda: _get(run, "/api/orders"), what="the desk's automatic work order")
        [alert] = await _get(run, "/api/alerts")
        assert orders[0]["alert_id"] == alert["id"]
        on_mqtt = await asyncio.to_thread(read_retained, run.broker, f"{run.root}/+/alerts/#")
        assert orjson.loads(on_mqtt[f"{run.root}/{run.site}/alerts/{alert['id']}"])["state"] == "open"  # notifier
        live = [orjson.loads(screen.queue.get_nowait()) for _ in range(screen.queue.qsize())]
        assert {"alert", "order"} <= {m["type"] for m in live}  # the live bus heard both
        assert failures == ["AlertChanged", "OrderChanged"]
        metrics = (await run.api.get("/metrics")).text
        assert 'smarthub_handler_errors_total{event="AlertChanged",handler="broken"} 1.0' in metrics
        assert 'smarthub_handler_errors_total{event="OrderChanged",handler="broken"} 1.0' in metrics


async def _get(run, path: str) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    response = await run.api.get(path)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]
