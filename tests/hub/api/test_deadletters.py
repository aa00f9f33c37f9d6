"""`GET /api/deadletters` pages with a cursor (the `Link` header's next page) and filters that combine."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from hub.config import Settings
from tests.support.hub_fixtures import HubRun, eventually, running_hub
from tests.support.mqtt_fixtures import Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]

KINDS = ("elevator", "gate", "camera")


async def every_page(api: httpx.AsyncClient, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """All rows, following each answer's `Link: <...>; rel="next"` as given, and how many pages it took."""
    rows: list[dict[str, Any]] = []
    response = await api.get("/api/deadletters", params=params)
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        rows += response.json()
        pages += 1
        link = response.headers.get("link")
        if link is None:
            return rows, pages
        found = re.fullmatch(r'<(/api/deadletters\?[^>]+)>; rel="next"', link)
        assert found, link
        response = await api.get(found.group(1))


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


async def test_paging_returns_each_dead_letter_once_newest_first_and_filters_combine(embedded_hub: HubRun) -> None:
    run = embedded_hub
    messages = []
    for i in range(2500):
        kind = KINDS[i % 3]
        topic = run.topic(kind, f"d{i % 7}", "telemetry") if i % 5 else f"{run.root}/{run.site}/{kind}/-bad/telemetry"
        messages.append((topic, b"garbage %d" % i))
    await run.publish_many(messages)
    await eventually(lambda: sum(run.hub.pipeline.stats.rejected.values()) == 2500, timeout=60,
                     what="all 2,500 dead-lettered")
    run.hub.pipeline.flush()

    rows, pages = await every_page(run.api, {"limit": 1000})
    assert pages == 3 and len(rows) == 2500
    ids = [row["id"] for row in rows]
    assert ids == sorted(set(ids), reverse=True)  # each once, newest first
    assert [int(row["payload"].split()[1]) for row in rows] == list(range(2499, -1, -1))
    default, pages = await every_page(run.api, {})
    assert pages == 25 and default == rows  # limit 100 by default

    received = [ms(row["received"]) for row in rows]
    since, until = received[2000], received[300]
    params = {"kind": "gate", "reason": "not_json", "since": str(since), "until": str(until), "limit": 17}
    filtered, pages = await every_page(run.api, params)
    expected = [row for row, t in zip(rows, received, strict=True)
                if row["kind"] == "gate" and row["reason"] == "not_json" and since <= t <= until]
    assert filtered == expected and pages == -(-len(expected) // 17) > 5
    assert {row["reason"] for row in rows} == {"not_json", "bad_topic"}

    metrics = (await run.api.get("/metrics")).text
    assert "smarthub_deadletters_rows 2500.0" in metrics and "smarthub_deadletters_dropped_total 0.0" in metrics
    assert f"smarthub_deadletters_bytes {float(run.hub.dead_letters.size_bytes)}" in metrics


@pytest.mark.parametrize("params", [{"before": "0"}, {"before": "x"}, {"since": "yesterday"}, {"limit": "1001"},
                                    {"until": "-5"}])
async def test_odd_paging_values_get_422(embedded_hub: HubRun, params: dict[str, str]) -> None:
    assert (await embedded_hub.api.get("/api/deadletters", params=params)).status_code == 422


async def test_past_the_byte_cap_the_oldest_go_and_metrics_count_every_one(
        settings_for: Callable[..., Settings], mosquitto: Broker) -> None:
    async with running_hub(settings_for("embedded", deadletter_max_mb=16 / 1024), mosquitto) as run:  # 16 KiB
        topic = run.topic("gate", "g-flood", "telemetry")
        await run.publish_many([(topic, b"garbage %04d " % i + b"x" * 200) for i in range(400)])
        await eventually(lambda: run.hub.pipeline.stats.rejected[("gate", "not_json")] == 400, timeout=30,
                         what="all 400 dead-lettered")
        run.hub.pipeline.flush()
        rows, _ = await every_page(run.api, {"limit": 1000})
        dead = run.hub.dead_letters
        assert 0 < len(rows) == dead.rows < 400 and dead.size_bytes <= 16 * 1024
        assert [int(row["payload"].split()[1]) for row in rows] == list(range(399, 399 - len(rows), -1))  # newest
        metrics = (await run.api.get("/metrics")).text
        assert f"smarthub_deadletters_dropped_total {float(400 - len(rows))}" in metrics
        assert f"smarthub_deadletters_rows {float(len(rows))}" in metrics
