"""Supervised lifecycle: a hub task that dies is restarted and counted while ingest goes on, and the stop
always makes the last flush, even after a task died or a stop step failed."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from hub.config import Settings
from hub.storage.base import EventQuery
from hub.storage.embedded import EmbeddedStorage
from tests.support.hub_fixtures import HubRun, eventually, running_hub
from tests.support.mqtt_fixtures import Broker, publish_many, start_mosquitto
from tests.support.processes import free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.services]

SMARTHUB = str(Path(sys.executable).with_name("smarthub"))


def fault(i: int) -> dict[str, Any]:
    return {"type": "fault", "code": "door_lock_fault", "active": False, "id": f"f{i}"}


async def test_a_dying_task_is_logged_restarted_and_counted_while_ingest_goes_on(
        hub_run: HubRun, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = hub_run.hub
    calls: list[int] = []
    check_deadlines = hub.alerts.check_deadlines

    def fails_once() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("deadline check broke")
        check_deadlines()

    monkeypatch.setattr(hub.alerts, "check_deadlines", fails_once)
    with caplog.at_level(logging.ERROR, logger="hub.supervisor"):
        await eventually(lambda: len(calls) >= 2, timeout=10, what="the heartbeat loop to run again")
    status = hub.supervisor.status()["heartbeats"]
    assert (status.state, status.restarts, status.last_error) == ("running", 1,
                                                                  "RuntimeError: deadline check broke")
    failed = [r for r in caplog.records if r.exc_info and "heartbeats" in r.getMessage()]
    assert len(failed) == 1 and "deadline check broke" in caplog.text and "Traceback" in caplog.text

    metrics = (await hub_run.api.get("/metrics")).text
    assert 'smarthub_task_restarts_total{task="heartbeats"} 1.0' in metrics
    assert 'smarthub_task_up{task="heartbeats"} 1.0' in metrics
    assert 'smarthub_task_restarts_total{task="mqtt-link"} 0.0' in metrics
    assert "smarthub_screen_refresh_failures_total 0.0" in metrics
    assert 'smarthub_task_up{task="vehicles-inside"} 0.0' in metrics  # a one-shot that finished
    assert hub.supervisor.status()["vehicles-inside"].state == "done"

    topic = hub_run.topic("elevator", "e1", "event")
    await hub_run.publish_many([(topic, fault(i)) for i in range(5)])
    await eventually(lambda: hub.pipeline.stats.received >= 5, what="messages received")
    await hub_run.stored()
    assert sorted(e["id"] for e in await hub_run.events(device="e1")) == [f"f{i}" for i in range(5)]


async def test_the_last_flush_happens_when_a_task_died_and_a_stop_step_fails(
        settings_for: Callable[..., Settings], mosquitto: Broker, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """What the MQTT edge never committed is flushed and drained at stop, after a task that died again and
    again; a failing store close skips nothing."""
    settings = settings_for("embedded")
    close, fail_close = EmbeddedStorage.close, [True]

    async def close_fails(self: EmbeddedStorage) -> None:  # patched before the start: the stop holds the method
        await close(self)
        if fail_close.pop():
            raise RuntimeError("store close broke")

    monkeypatch.setattr(EmbeddedStorage, "close", close_fails)
    async with running_hub(settings, mosquitto) as run:
        hub = run.hub

        def broken() -> None:
            raise OSError("a task that dies")

        monkeypatch.setattr(hub.mqtt, "commit", lambda: None)  # nothing reaches the outbox while the hub runs
        monkeypatch.setattr(hub.alerts, "check_deadlines", broken)
        await run.publish_many([(run.topic("elevator", "e2", "event"), fault(i)) for i in range(7)])
        await eventually(lambda: hub.pipeline.stats.received == 7 and hub.pipeline.pending > 0,
                         what="7 events received and held")
        await eventually(lambda: hub.supervisor.status()["heartbeats"].restarts >= 1, what="the task to die")
        assert hub.outbox.depth == 0  # nothing reached the outbox while the hub ran
        caplog.clear()
    # The `async with` ended without an exception although a task had died and the store close raised.
    assert {s.state for name, s in hub.supervisor.status().items() if name != "vehicles-inside"} == {"stopped"}
    assert "closing the store failed" in caplog.text and "store close broke" in caplog.text
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):  # the outbox was closed after the failing step
        hub.outbox.take(1)

    fail_close.append(False)
    async with running_hub(settings, mosquitto) as again:
        assert again.hub.outbox.depth == 0
        assert sorted(e["id"] for e in await again.events(device="e2")) == [f"f{i}" for i in range(7)]


NOTHING_COMMITTED = """
import sys
from hub import cli
from hub.alerts.engine import AlertEngine
from hub.mqtt import MqttLink

def never(self, conn):
    pass

def broken(self):
    raise OSError("injected: a task that dies")

MqttLink._commit = never
AlertEngine.check_deadlines = broken
sys.exit(cli.main(["run"]))
"""
"""`smarthub run` whose MQTT edge never commits (nor acknowledges) and whose heartbeat task dies at every
turn: received messages reach the outbox only at the stop."""


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


@pytest.mark.parametrize("edge", ["commits", "holds"])
def test_smarthub_run_stops_on_sigterm_with_the_broker_down_exits_0_and_keeps_every_message(
        edge: str, root: str, tmp_path: Path) -> None:
    """The process as a user runs it: messages received, the broker killed, SIGTERM: exit 0, all stored.

    With `holds`, the messages are still held in the pipeline at SIGTERM: only the last flush and the
    outbox drain at stop can store them, after a task that died again and again."""
    broker = start_mosquitto(tmp_path / "mqtt")
    port, data = free_port(), tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTHUB_")} | {
        "SMARTHUB_MQTT_URL": broker.url(), "SMARTHUB_MQTT_CLIENT_ID": f"run-{root}", "SMARTHUB_ROOT": root,
        "SMARTHUB_HTTP": f"127.0.0.1:{port}", "SMARTHUB_DATA_DIR": str(data), "SMARTHUB_ADMIN_TOKEN": "run-token",
    }
    argv = [SMARTHUB, "run"] if edge == "commits" else [sys.executable, "-c", NOTHING_COMMITTED]
    log = tmp_path / "hub.log"
    with open(log, "wb") as out:
        hub = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    topic = f"{root}/sunshine/elevator/e3/event"
    try:
        wait_until(lambda: httpx.get(f"{base}/api/health").json()["broker"], timeout=20, what="hub to connect")
        publish_many([(topic, orjson.dumps(fault(i))) for i in range(200)], broker)
        wait_until(lambda: metric(httpx.get(f"{base}/metrics").text, "smarthub_messages_received_total") == 200,
                   timeout=10, what="hub to receive 200 messages")
        if edge == "holds":  # the heartbeat task dies at its first tick, a second after the start
            wait_until(lambda: (metric(httpx.get(f"{base}/metrics").text,
                                       'smarthub_task_restarts_total{task="heartbeats"}') or 0) >= 1,
                       timeout=10, what="the heartbeat task to die")
        before_stop = httpx.get(f"{base}/metrics").text
        broker.service.stop()  # the broker is down when the hub is told to stop
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(timeout=30) == 0, log.read_text()
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait()
        broker.service.stop()

    async def stored() -> list[dict[str, Any]]:
        store = EmbeddedStorage(data / "store.db")
        await store.start()
        try:
            return await store.query_events(EventQuery(device="e3", limit=1000))
        finally:
            await store.close()

    assert sorted(e["id"] for e in asyncio.run(stored())) == sorted(f"f{i}" for i in range(200))
    text = log.read_text()
    assert "stopping" in text and "stopped" in text, text
    died = text.count("task heartbeats failed; restarting it")
    assert text.count("Traceback") == died, text  # no traceback but the injected failures'
    if edge == "holds":
        assert died >= 1 and metric(before_stop, "smarthub_outbox_points") == 0
        assert metric(before_stop, "smarthub_pending_points") == 200
        assert (metric(before_stop, 'smarthub_task_restarts_total{task="heartbeats"}') or 0) >= 1
        assert metric(before_stop, 'smarthub_task_up{task="mqtt-link"}') == 1
