"""Chart series from the store, on both backends: traffic per hour, charging power, alerts per day."""

from __future__ import annotations

import time

import pytest

from hub.series import HOUR_MS, china_day_start
from hub.times import iso
from tests.support.hub_fixtures import HubRun, eventually

pytestmark = [pytest.mark.integration, pytest.mark.services]

PASSAGE = {"type": "passage", "plate_color": "blue", "lane": "1", "vehicle_class": "car", "confidence": 0.9,
           "decision": "allowed", "category": "resident"}


async def test_series(hub_run: HubRun) -> None:
    run = hub_run
    now = int(time.time() * 1000)
    messages = [(run.topic("gate", "g1", "event"), PASSAGE | {"plate": f"琼A1234{i}", "direction": d, "id": f"p{i}"})
                for i, d in enumerate(["in", "in", "out"])]
    messages += [(run.topic("charger", "ev1", "telemetry"), {"power_kw": 7.0}),
                 (run.topic("charger", "ev2", "telemetry"), {"power_kw": 3.0}),
                 (run.topic("elevator", "e1", "event"), {"type": "fault", "code": "overspeed", "active": True})]
    await run.publish_many(messages)
    await eventually(lambda: sum(run.hub.pipeline.stats.accepted.values()) == 6, what="six messages")
    await run.stored()

    traffic = (await run.api.get("/api/series/traffic")).json()
    assert traffic["since"] == iso(china_day_start(now)) and len(traffic["in"]) == 24
    hour = (now - china_day_start(now)) // HOUR_MS
    near = slice(hour, hour + 2)  # the messages may cross an hour boundary while the test runs
    assert sum(n for _, n in traffic["in"][near]) == 2 and sum(n for _, n in traffic["out"][near]) == 1
    assert sum(n for _, n in traffic["in"]) == 2
    yesterday = (await run.api.get("/api/series/traffic", params={"days_back": 1})).json()
    assert sum(n for _, n in yesterday["in"]) == 0

    power = (await run.api.get("/api/series/charging_power", params={"hours": 1, "every_s": 900})).json()
    assert power["chargers"] == 2 and max(kw for _, kw in power["kw"]) == 10.0

    alerts = (await run.api.get("/api/series/alerts", params={"days": 7})).json()
    assert len(alerts["days"]) == 7 and alerts["days"][-1]["critical"] == 1
