"""Supervised lifecycle: a hub task that dies is restarted and counted while ingest goes on, and the stop
always makes the last flush, even after a task died or a stop step failed."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from hub.config import Settings
from hub.storage.embedded import EmbeddedStorage
from tests.support.hub_fixtures import HubRun, eventually, running_hub
from tests.support.mqtt_fixtures import Broker

pytestmark = pytest.mark.services


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
    assert 'smarthub_task_up{task="vehicles-inside"} 0.0' in metrics  # a one-shot that finished
    assert hub.supervisor.status()["vehicles-inside"].state == "done"

    topic = hub_run.topic("elevator", "e1", "event")
    await hub_run.publish_many([(topic, fault(i)) for i in range(5)])
    await eventually(lambda: hub.pipeline.stats.received >= 5, what="messages received")
    await hub_run.stored()
    assert sorted(e["id"] for e in await hub_run.events(device="e1")) == [f"f{i}" for i in range(5)]


async def test_the_last_flush_happens_when_the_flush_loop_died_and_a_stop_step_fails(
        settings_for: Callable[..., Settings], mosquitto: Broker, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """What the flush loop never moved is flushed and drained at stop; a failing store close skips nothing."""
    settings = settings_for("embedded")
    close, fail_close = EmbeddedStorage.close, [True]

    async def close_fails(self: EmbeddedStorage) -> None:  # patched before the start: the stop holds the method
        await close(self)
        if fail_close.pop():
            raise RuntimeError("store close broke")

    monkeypatch.setattr(EmbeddedStorage, "close", close_fails)
    async with running_hub(settings, mosquitto) as run:
        hub = run.hub
        flush = hub.pipeline.flush

        def not_from_the_loop() -> None:
            task = asyncio.current_task()
            if task is not None and task.get_name() == "pipeline-flush":
                raise OSError("outbox disk gone")
            flush()

        monkeypatch.setattr(hub.pipeline, "flush", not_from_the_loop)
        await run.publish_many([(run.topic("elevator", "e2", "event"), fault(i)) for i in range(7)])
        await eventually(lambda: hub.pipeline.stats.received == 7 and hub.pipeline.pending > 0,
                         what="7 events received and held")
        await eventually(lambda: hub.supervisor.status()["pipeline-flush"].restarts >= 1, what="the loop to die")
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
