"""A store outage buffers in the outbox and catches up; a hub restart loses nothing it accepted."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from devices.base import Point
from hub.storage.influx import InfluxStorage
from tests.support.hub_fixtures import eventually, hub_settings, running_hub
from tests.support.influx_fixtures import start_influxd
from tests.support.mqtt_fixtures import Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]


async def test_store_outage_buffers_then_catches_up_across_a_hub_restart(
    mosquitto: Broker, root: str, tmp_path: Path
) -> None:
    influx = start_influxd(tmp_path / "influx")
    settings = hub_settings(mosquitto, root, tmp_path / "data", influx.url)
    try:
        async with running_hub(settings, mosquitto) as run:
            topic = run.topic("access", "door-1", "event")
            first = [{"type": "access", "method": "face", "subject": "p1", "result": "granted", "id": f"a{i}"}
                     for i in range(20)]
            await run.publish_many([(topic, e) for e in first])
            await eventually(lambda: run.hub.writer.stats.points >= 20, what="first events stored")

            influx.stop()
            second = [e | {"id": f"b{i}"} for i, e in enumerate(first)]
            await run.publish_many([(topic, e) for e in second])
            await eventually(lambda: run.hub.writer.stats.failures > 0 and run.hub.outbox.depth == 20,
                             what="writes to fail and the outbox to hold the new events")
            health = (await run.api.get("/api/health")).json()
            assert health["status"] == "degraded" and health["store"] is False and health["outbox_points"] == 20
            metrics = (await run.api.get("/metrics")).text
            assert "smarthub_outbox_points 20.0" in metrics and "smarthub_store_up 0.0" in metrics
        # The hub stopped with the store still down: the outbox keeps the points on disk.

        influx.start()
        async with running_hub(settings, mosquitto) as run:
            await run.stored()
            assert run.hub.writer.stats.points == 20  # the ones left in the outbox, nothing received anew
            stored = await run.events(device="door-1", limit=100)
            assert sorted(e["id"] for e in stored) == sorted(e["id"] for e in first + second)
    finally:
        influx.stop()


async def test_a_store_that_refuses_a_batch_sends_it_to_the_dead_letters(
    mosquitto: Broker, root: str, tmp_path: Path, influxd: str
) -> None:
    """A field type conflict cannot be retried away; the points are kept, not dropped or retried forever."""
    settings = hub_settings(mosquitto, root, tmp_path / "data", influxd)
    store = InfluxStorage(influxd, db=settings.influx_db)
    await store.start()
    await store.write([])  # provisions the database
    async with running_hub(settings, mosquitto) as run:
        # A device-added field is always stored as float; make the database hold it as a string first
        # (in the current shard: InfluxDB 1.x keeps field types per shard, i.e. per time range).
        await store.write([Point("elevator", {"site": run.site, "device": "e9"}, {"vendor_x": "text"},
                                 int(time.time() * 1000) - 1000)])
        await run.publish(run.topic("elevator", "e9", "telemetry"), {"floor": 2, "vendor_x": 1.5})
        await eventually(lambda: run.hub.writer.stats.rejected_points == 1, what="the batch to be refused")
        assert run.hub.outbox.depth == 0
        letters = (await run.api.get("/api/deadletters", params={"reason": "storage_rejected"})).json()
        assert len(letters) == 1 and "conflict" in letters[0]["detail"] and "vendor_x" in letters[0]["payload"]
        assert letters[0]["kind"] == "elevator", "found under its kind, as every dead letter"
        assert "smarthub_write_rejected_points_total 1.0" in (await run.api.get("/metrics")).text
    await store.close()


class Verbatim:
    """A batch of lines as they are, as a hub without today's checks could have committed them."""

    def __init__(self, *lines: str) -> None:
        self.lines = lines

    def add(self, points: Sequence[Point]) -> None:
        raise NotImplementedError("a verbatim batch is made whole")

    def __len__(self) -> int:
        return len(self.lines)

    def body(self) -> bytes:
        return "\n".join(self.lines).encode()


async def test_a_refused_line_never_puts_its_fields_in_the_log_or_the_health_answer(
    mosquitto: Broker, root: str, tmp_path: Path, influxd: str, caplog: pytest.LogCaptureFixture
) -> None:
    """InfluxDB quotes a line it cannot parse (`unable to parse '<line>': ...`): with a plate in it."""
    settings = hub_settings(mosquitto, root, tmp_path / "data", influxd)
    plate = "琼A12345"
    async with running_hub(settings, mosquitto) as run:
        # An integer InfluxDB cannot hold: it refuses the line and quotes it. Ingest now dead-letters such a
        # message itself (`unstorable`), so the point is one already in the outbox (from an older hub).
        line = (f'gate_event,device=g1,site={run.site},type=passage id="p-big",plate="{plate}",seq={2**64}i '
                f"{int(time.time() * 1000)}")
        run.hub.outbox.commit(Verbatim(line))
        await eventually(lambda: run.hub.writer.stats.rejected_points == 1, what="the batch to be refused")
        health = (await run.api.get("/api/health")).text
        letters = (await run.api.get("/api/deadletters", params={"reason": "storage_rejected"})).json()
    assert "out of range" in (run.hub.writer.stats.last_error or "")
    assert plate not in caplog.text and plate not in health and plate not in (run.hub.writer.stats.last_error or "")
    assert [letter["detail"] for letter in letters] == [run.hub.writer.stats.last_error]
