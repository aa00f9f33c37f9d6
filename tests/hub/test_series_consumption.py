"""Consumption from household meters' registers, per hour and China day, on both stores: a replaced meter's
restart counted as what was used, a building's meters apart from the site's, the route's guards."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devices.base import Point
from hub.config import Settings
from hub.series import DAY_MS, HOUR_MS, china_day_start, consumption
from hub.storage.base import Storage
from hub.times import iso
from tests.support.hub_fixtures import HubRun, eventually, running_hub
from tests.support.mqtt_fixtures import Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]

MINUTE_MS = 60_000
YESTERDAY = china_day_start(int(time.time() * 1000)) - DAY_MS
"""Yesterday's China midnight: every reading below is in the past, in one China day."""

READINGS: list[tuple[str, str, str, int, float]] = [  # (device, building, utility, ms after YESTERDAY, register)
    ("w1", "A", "water", 1 * HOUR_MS, 100.0),
    ("w1", "A", "water", 2 * HOUR_MS, 101.0),  # on an hour's edge: in the hour it starts
    # replaced at 2:30 (old register's last 101.5, the new one starts at 0)
    ("w1", "A", "water", 3 * HOUR_MS + 10 * MINUTE_MS, 0.25),
    ("w1", "A", "water", 3 * HOUR_MS + 40 * MINUTE_MS, 0.75),
    ("w2", "B", "water", 1 * HOUR_MS + 30 * MINUTE_MS, 10.0),
    ("w2", "B", "water", 3 * HOUR_MS + 30 * MINUTE_MS, 12.0),
    ("e1", "A", "electricity", 2 * HOUR_MS, 500.0),
    ("e1", "A", "electricity", 2 * HOUR_MS + 1, 501.5),
]
REPLACED_AT = 2 * HOUR_MS + 30 * MINUTE_MS
REPLACED = {"type": "replaced", "id": "r-1", "old_reading": 101.5, "new_reading": 0.0}

WATER_HOURS = {2: 1.0, 3: 0.5 + 0.25 + 0.5 + 2.0}
"""Yesterday's water per hour: w1's 1.0 at 2:00; at 3:00 the old register's last 0.5 (101.0 -> 101.5), the new
one's 0.25 to its first reading and 0.5 after, and w2's 2.0."""
BUILDING_A_HOURS = {2: 1.0, 3: 1.25}


def hours_of(answer: dict[str, Any]) -> dict[int, float]:
    """Yesterday's non-zero hours of an hourly answer, by hour of the day."""
    start = iso(YESTERDAY)
    assert answer["since"] == start and answer["values"][0][0] == start
    return {i: v for i, (_, v) in enumerate(answer["values"][:24]) if v}


async def test_consumption_from_the_store_counts_a_replacement(storage: Storage) -> None:
    points = [Point("meter", {"site": "s", "device": d, "building": b}, {"utility": u, "reading": r, "lag_ms": 0},
                    YESTERDAY + t) for d, b, u, t, r in READINGS]
    points.append(Point("meter_event", {"site": "s", "device": "w1", "type": "replaced"},
                        {k: v for k, v in REPLACED.items() if k != "type"} | {"lag_ms": 0}, YESTERDAY + REPLACED_AT))
    await storage.write(points)

    water = await consumption(storage, "s", None, "water", 2, HOUR_MS)
    assert water["unit"] == "m³" and water["every_s"] == 3600 and water["utility"] == "water"
    assert hours_of(water) == WATER_HOURS
    assert all(v >= 0 for _, v in water["values"])
    assert hours_of(await consumption(storage, "s", "A", "water", 2, HOUR_MS)) == BUILDING_A_HOURS
    assert hours_of(await consumption(storage, "s", "B", "water", 2, HOUR_MS)) == {3: 2.0}
    assert hours_of(await consumption(storage, None, None, "electricity", 2, HOUR_MS)) == {2: 1.5}
    days = await consumption(storage, "s", None, "water", 2, DAY_MS)
    assert days["every_s"] == 86400 and [v for _, v in days["values"]] == [4.25, 0.0]
    assert [v for _, v in (await consumption(storage, "elsewhere", None, "water", 2, DAY_MS))["values"]] == [0, 0]


def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text("".join(f'[[devices]]\nsite = "sunshine"\nkind = "meter"\ndevice = "{d}"\nbuilding = "{b}"\n\n'
                            for d, b in {(d, b) for d, b, *_ in READINGS}), encoding="utf-8")
    return path


async def test_consumption_through_the_hub(settings_for: Callable[..., Settings], mosquitto: Broker,
                                           tmp_path: Path, backend: str) -> None:
    """Readings and the replacement published over MQTT as meters send them; the route answers per building."""
    async with running_hub(settings_for(backend, registry=registry_file(tmp_path)), mosquitto) as run:
        messages = [(YESTERDAY + t, run.topic("meter", d, "telemetry"), {"utility": u, "reading": r})
                    for d, _, u, t, r in READINGS]
        messages.append((YESTERDAY + REPLACED_AT, run.topic("meter", "w1", "event"), REPLACED))
        messages.sort(key=lambda m: m[0])  # in the order the meters took them
        await run.publish_many([(topic, payload | {"ts": at}) for at, topic, payload in messages])
        await eventually(lambda: sum(run.hub.pipeline.stats.accepted.values()) == len(messages),
                         what="every reading")
        await run.stored()
        await check_route(run)


async def check_route(run: HubRun) -> None:
    async def get(**params: Any) -> dict[str, Any]:
        response = await run.api.get("/api/series/consumption", params=params)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    assert hours_of(await get(utility="water", site=run.site, every="hour", days=2)) == WATER_HOURS
    assert hours_of(await get(utility="water", building="A", every="hour", days=2)) == BUILDING_A_HOURS
    electricity = await get(utility="electricity", every="day", days=2)
    assert electricity["unit"] == "kWh" and [v for _, v in electricity["values"]] == [1.5, 0.0]
    for bad in ({"utility": "gas"}, {}, {"utility": "water", "every": "minute"}, {"utility": "water", "days": 0},
                {"utility": "water", "every": "hour", "days": 32}):
        response = await run.api.get("/api/series/consumption", params=bad)
        assert response.status_code == 422, (bad, response.text)
