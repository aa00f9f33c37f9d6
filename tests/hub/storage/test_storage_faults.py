"""Store outages end quickly and cost nothing: a hung or killed store, under load, and a locked embedded file.

Every fault is real: InfluxDB 1.6 SIGSTOPped or SIGKILLed (then started again on
the same port and data), an embedded store whose file another process holds
locked. Each ends with every published message stored exactly once and the
writer's first successful write within RESUME_WITHIN_S of the store's return.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest

from devices.base import Point
from hub.storage.embedded import EmbeddedStorage
from hub.storage.influx import InfluxStorage
from hub.storage.outbox import Outbox, Writer
from tests.support.hub_fixtures import HubRun, eventually, hub_settings, running_hub
from tests.support.influx_fixtures import Influxd, start_influxd
from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER, Broker
from tests.support.refused import collecting

pytestmark = [pytest.mark.integration, pytest.mark.services]

OUTAGE_S = 30.0
"""How long the store stays away in the tests under load (the issue's figure)."""
RESUME_WITHIN_S = 2.0
RESUME_MARGIN_S = 0.5
"""Scheduling slack on a shared 2-core machine, on top of the promise."""
PING_WITHIN_S = 1.5
"""The promise is 0.5 s (1 s for health); generous for a loaded machine."""
RATE_MSG_S = 1500
DEVICES = 30
LOAD_BEFORE_S = 2.0
LOAD_AFTER_S = 3.0


class Publisher(threading.Thread):
    """Elevator telemetry at RATE_MSG_S over QoS 1, round robin over DEVICES, unique `ts` and `seq` per device."""

    def __init__(self, broker: Broker, run: HubRun) -> None:
        super().__init__(name="telemetry-publisher", daemon=True)
        self.broker = broker
        self.topics = {f"e{i:02d}": run.topic("elevator", f"e{i:02d}", "telemetry") for i in range(DEVICES)}
        self.base_ms = int(time.time() * 1000) - 600_000  # ts = base + seq: plausible and unique per device
        self.stopping = threading.Event()
        self.published: Counter[str] = Counter()
        """Messages the broker acknowledged, per device (set when the thread ends)."""
        self.unacknowledged = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def _run(self) -> None:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"load-{uuid.uuid4().hex[:8]}")
        client.username_pw_set(DEVICE_USER, DEVICE_PASSWORD)
        client.max_inflight_messages_set(200)
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        sent: list[tuple[str, paho.MQTTMessageInfo]] = []
        seq = 0
        tick_s = 0.02
        burst = max(1, int(RATE_MSG_S * tick_s) // DEVICES) * DEVICES
        next_tick = time.monotonic()
        try:
            while not self.stopping.is_set():
                for device, topic in self.topics.items():
                    for k in range(burst // DEVICES):
                        n = seq + k
                        payload = {"ts": self.base_ms + n, "seq": n, "floor": n % 30, "door": "closed",
                                   "running": True, "occupied": n % 2 == 0}
                        sent.append((device, client.publish(topic, orjson.dumps(payload), qos=1)))
                seq += burst // DEVICES
                next_tick += tick_s
                time.sleep(max(0.0, next_tick - time.monotonic()))
            for device, info in sent:
                info.wait_for_publish(timeout=30)
                if info.is_published():
                    self.published[device] += 1
                else:
                    self.unacknowledged += 1
        finally:
            client.loop_stop()
            client.disconnect()

    def finish(self) -> Counter[str]:
        self.stopping.set()
        self.join(timeout=60)
        assert self.error is None, f"publisher failed: {self.error!r}"
        assert not self.is_alive() and self.unacknowledged == 0, f"{self.unacknowledged} publishes not acknowledged"
        return self.published


async def stored_per_device(influx: Influxd, db: str) -> tuple[dict[str, int], dict[str, int]]:
    """(points, distinct seq) per elevator, read from InfluxDB itself."""
    store = InfluxStorage(influx.url, db=db)
    try:
        series = await store.query('SELECT count("seq"), count(distinct("seq")) FROM "elevator" GROUP BY "device"')
    finally:
        await store.close()
    counts, distinct = {}, {}
    for s in series:
        [(_, n, d)] = s["values"]
        counts[s["tags"]["device"]] = n
        distinct[s["tags"]["device"]] = d
    return counts, distinct


async def outage_under_load(
    mosquitto: Broker, root: str, tmp_path: Path, what: str, take_away: Callable[[Influxd], None],
    bring_back: Callable[[Influxd], None],
) -> float:
    """Load through the broker into a hub on InfluxDB; the store goes away for OUTAGE_S and comes back.

    Returns the seconds from the store's return to the writer's first successful write after it.
    """
    influx = start_influxd(tmp_path / "influx")
    settings = hub_settings(mosquitto, root, tmp_path / "data", influx.url)
    try:
        async with running_hub(settings, mosquitto) as run:
            writer = run.hub.writer.stats
            publisher = Publisher(mosquitto, run)
            publisher.start()
            await asyncio.sleep(LOAD_BEFORE_S)
            await eventually(lambda: writer.points > 0, what="the first points stored")

            take_away(influx)
            await asyncio.sleep(OUTAGE_S)
            assert not writer.store_up and writer.last_error, "the writer did not notice the outage"
            away_since, backlog = writer.store_since, run.hub.outbox.depth
            assert backlog > 0

            await asyncio.to_thread(bring_back, influx)
            back_at = time.time()
            await eventually(lambda: writer.store_up, timeout=OUTAGE_S + 10, what="the writer's first write")
            resume_s = writer.store_since - back_at
            print(f"\n{what}: store away {back_at - away_since:.1f} s (as the writer saw it), backlog {backlog} "
                  f"points; first write {resume_s:+.2f} s after the store was back")

            await asyncio.sleep(LOAD_AFTER_S)
            published = await asyncio.to_thread(publisher.finish)
            total = sum(published.values())
            await eventually(lambda: run.hub.pipeline.stats.received >= total, timeout=30,
                             what=f"the hub to receive all {total} messages")
            run.hub.pipeline.flush()
            await eventually(lambda: run.hub.outbox.depth == 0 and run.hub.pipeline.pending == 0, timeout=30,
                             what="the outbox to drain")
            counts, distinct = await stored_per_device(influx, settings.influx_db)
            assert len(published) == DEVICES
            assert counts == dict(published), "points stored per device != messages published"
            assert distinct == dict(published), "distinct seq per device != messages published"
            print(f"{what}: {total} messages published at ~{RATE_MSG_S}/s, each stored once")
            return resume_s
    finally:
        influx.close()


async def test_a_store_sigstopped_under_load_loses_nothing_and_the_writer_resumes_at_once(
    mosquitto: Broker, root: str, tmp_path: Path
) -> None:
    resume_s = await outage_under_load(
        mosquitto, root, tmp_path, "SIGSTOP",
        lambda influx: os.kill(influx.service.proc.pid, signal.SIGSTOP),
        lambda influx: os.kill(influx.service.proc.pid, signal.SIGCONT),
    )
    assert resume_s < RESUME_WITHIN_S + RESUME_MARGIN_S


def kill(influx: Influxd) -> None:
    influx.service.proc.kill()
    influx.service.proc.wait()
    influx.stop()  # closes its log


async def test_a_store_killed_under_load_loses_nothing_and_the_writer_resumes_at_once(
    mosquitto: Broker, root: str, tmp_path: Path
) -> None:
    """SIGKILL, then influxd started again on the same port and data dir: what it acknowledged survived."""
    resume_s = await outage_under_load(mosquitto, root, tmp_path, "SIGKILL", kill, Influxd.start)
    assert resume_s < RESUME_WITHIN_S + RESUME_MARGIN_S


async def timed_ping(store: InfluxStorage | EmbeddedStorage) -> tuple[bool, float]:
    started = time.monotonic()
    answer = await store.ping()
    return answer, time.monotonic() - started


async def test_ping_of_a_hung_influxdb_says_false_within_a_second(tmp_path: Path) -> None:
    influx = start_influxd(tmp_path / "influx")
    store = InfluxStorage(influx.url, db="hung")
    try:
        assert (await timed_ping(store))[0] is True
        os.kill(influx.service.proc.pid, signal.SIGSTOP)
        try:
            answers = [await timed_ping(store) for _ in range(3)]
            print(f"\nping of a SIGSTOPped InfluxDB: {', '.join(f'{s:.3f} s' for _, s in answers)}")
            assert all(answer is False and seconds < PING_WITHIN_S for answer, seconds in answers), answers
        finally:
            os.kill(influx.service.proc.pid, signal.SIGCONT)
        assert (await timed_ping(store))[0] is True
    finally:
        await store.close()
        influx.close()


@contextmanager
def locked(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the SQLite file's write lock (as a backup or an `sqlite3` shell may)."""
    code = ("import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()


async def test_ping_of_a_locked_embedded_store_says_false_within_a_second(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "store.db")
    await store.start()
    try:
        assert (await timed_ping(store))[0] is True
        with locked(store.path):
            answer, seconds = await timed_ping(store)
            print(f"\nping of a locked embedded store: {seconds:.3f} s")
            assert answer is False and seconds < PING_WITHIN_S
        assert (await timed_ping(store))[0] is True
    finally:
        await store.close()


async def test_a_write_cancelled_midway_leaves_the_embedded_store_writable_at_once(tmp_path: Path) -> None:
    """What a hub's stop does to the writer: the cancelled write's thread goes on in its transaction, and the
    next write (the last drain) must wait for it, not fail beside it on the same connection."""
    store = EmbeddedStorage(tmp_path / "store.db")
    await store.start()
    try:
        big = [Point("elevator", {"site": "s", "device": f"e{i % 50}"}, {"floor": i, "load_kg": 1.5 * i}, 1_000 + i)
               for i in range(60_000)]
        cancelled = asyncio.create_task(store.write(big))
        await asyncio.sleep(0.05)  # its thread is inside the transaction by now (60,000 points take seconds)
        assert not cancelled.done()
        cancelled.cancel()
        await store.write([Point("elevator", {"site": "s", "device": "after"}, {"floor": 1}, 999)])
        rows = await store.query_points(["elevator"], {"device": "after"})
        assert [r[2]["floor"] for r in rows] == [1]
    finally:
        await store.close()


async def test_the_writer_resumes_within_two_seconds_when_a_locked_embedded_store_is_released(
    tmp_path: Path,
) -> None:
    """Writes to a locked file fail (after SQLite's 5 s busy wait); the lock goes, the writer writes at once."""
    store = EmbeddedStorage(tmp_path / "store.db")
    await store.start()
    outbox = Outbox(tmp_path / "outbox.db", wire=store)
    rejected: list[tuple[list[bytes], str]] = []
    writer = Writer(outbox, store, collecting(rejected))
    now = int(time.time() * 1000)
    points = [Point("elevator", {"site": "s", "device": "e1"}, {"floor": i, "seq": i}, now - 10_000 + i)
              for i in range(500)]
    task = asyncio.create_task(writer.run(), name="writer-under-test")
    try:
        with locked(store.path) as locker:
            outbox.put(points)
            await eventually(lambda: not writer.stats.store_up, timeout=15, what="the write to fail")
            assert "locked" in (writer.stats.last_error or "")
            # Longer than a retry would take (backoff + the 5 s busy wait): the writer only pings meanwhile.
            await asyncio.sleep(6.5)
            assert outbox.depth == 500 and writer.stats.points == 0 and writer.stats.failures == 1
            locker.kill()
            locker.wait()
            back_at = time.time()
        await eventually(lambda: writer.stats.store_up, timeout=40, what="the writer's first write")
        resume_s = writer.stats.store_since - back_at
        print(f"\nembedded store unlocked: first write {resume_s:.2f} s after")
        assert resume_s < RESUME_WITHIN_S + RESUME_MARGIN_S
        assert outbox.depth == 0 and not rejected
        assert len(await store.query_points(["elevator"], {"device": "e1"}, limit=1000)) == 500
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        outbox.close()
        await store.close()


async def test_at_the_outbox_cap_the_hub_stops_taking_messages_and_the_broker_keeps_them(
    mosquitto: Broker, root: str, tmp_path: Path
) -> None:
    """A hub on the embedded store, its file locked: past its cap the outbox still accepts what was read, then
    the hub stops reading (so stops acknowledging) and the broker queues; unlocked, it drains, reads again,
    and every message is stored once."""
    settings = hub_settings(mosquitto, root, tmp_path / "data", outbox_max_mb=4 / 1024)  # 4 KiB
    async with running_hub(settings, mosquitto) as run:
        hub, outbox = run.hub, run.hub.outbox
        assert outbox.max_bytes == 4096
        topic = run.topic("elevator", "e1", "telemetry")
        now = int(time.time() * 1000)
        messages = [(topic, {"ts": now - 1000 + i, "seq": i, "floor": i % 9}) for i in range(80)]
        with locked(settings.data_dir / "store.db"):
            # Enough to pass the cap (one burst may be read whole before the commit that finds the outbox full),
            # then, once the hub holds, the rest: the broker keeps those.
            await run.publish_many(messages[:60])  # the broker has them (QoS 1 acknowledged to the device)
            await eventually(lambda: hub.mqtt.held, timeout=15, what="the hub to stop reading")
            await run.publish_many(messages[60:])
            await eventually(lambda: not hub.writer.stats.store_up, timeout=15, what="the write to fail")
            assert outbox.full and outbox.near_full and outbox.fill > 1.0
            read = hub.pipeline.stats.received
            await asyncio.sleep(1.0)
            assert hub.pipeline.stats.received == read <= 60  # the rest wait at the broker, not read, not acknowledged
            assert outbox.depth == read  # what was read before the hold is kept, past the cap
            metrics = {line.split(" ")[0]: float(line.split(" ")[1]) for line in (await run.api.get("/metrics")).text
                       .splitlines() if line.startswith(("smarthub_outbox_", "smarthub_mqtt_held"))}
            assert metrics["smarthub_outbox_bytes"] == outbox.size_bytes > 4096
            assert metrics["smarthub_outbox_fill"] == pytest.approx(outbox.size_bytes / 4096)
            assert metrics["smarthub_mqtt_held"] == 1
        await eventually(lambda: hub.pipeline.stats.received == 80 and outbox.depth == 0, timeout=10,
                         what="the outbox to drain and the rest to be read")
        assert hub.mqtt.held is None and hub.mqtt.connects == 1  # the same connection, only paused
        await run.stored()
        points = await hub.storage.query_points(["elevator"], {"device": "e1"}, limit=100)
        assert sorted(columns["seq"] for _, _, columns in points) == list(range(80))
