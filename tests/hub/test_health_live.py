"""Health tells the truth, fast: a lost broker is 503 after the grace and a hub alert (API, webhook), a
hung store is said at once and never makes /api/health wait. Real Mosquitto and InfluxDB, really stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hub.alerts.models import HUB_FAULTS
from tests.hub.alerts.test_alerts_live import Hook
from tests.support.hub_fixtures import HubRun, eventually, hub_settings, running_hub
from tests.support.influx_fixtures import start_influxd
from tests.support.mqtt_fixtures import Broker, start_mosquitto
from tests.support.processes import Service, port_open, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.services]
GRACE_S = 2.0


async def _health(run: HubRun) -> tuple[int, dict[str, Any], float]:
    started = time.perf_counter()
    response = await run.api.get("/api/health", headers={"Authorization": ""})
    return response.status_code, response.json(), time.perf_counter() - started


async def _hub_alerts(run: HubRun, **params: Any) -> list[dict[str, Any]]:
    response = await run.api.get("/api/alerts", params={"kind": "hub", **params})
    return response.json()  # type: ignore[no-any-return]


def _start_again(broker: Broker) -> None:
    broker.service = Service(broker.service.argv, broker.dir / "mosquitto.log")
    wait_until(lambda: port_open(broker.port), what="mosquitto to listen again")


async def test_broker_lost_past_the_grace_is_503_and_a_hub_alert_until_it_is_back(root: str, tmp_path: Path) -> None:
    broker = start_mosquitto(tmp_path / "mqtt")  # our own: the session's broker must stay up for other tests
    hook = Hook()
    settings = hub_settings(broker, root, tmp_path / "data", broker_grace_s=GRACE_S, webhooks=hook.url)
    try:
        async with running_hub(settings, broker) as run:
            code, body, _ = await _health(run)
            assert (code, body["status"], body["receiving"], body["reasons"]) == (200, "ok", True, [])
            assert set(body["components"]) == {"broker", "store", "outbox", "tasks"}
            assert all(c["state"] == "ok" for c in body["components"].values())

            stopped = time.time()
            broker.service.stop()
            seen: list[tuple[float, int, str]] = []
            while True:
                code, body, _ = await _health(run)
                seen.append((time.time() - stopped, code, body["status"]))
                if code == 503 or seen[-1][0] > GRACE_S + 5:
                    break
                await asyncio.sleep(0.1)
            took = seen[-1][0]
            assert code == 503, seen
            assert took <= GRACE_S + 1.5, f"503 only after {took:.1f} s (grace {GRACE_S} s): {seen}"
            assert all(c == 200 for t, c, _ in seen[:-1] if t < GRACE_S - 0.3), seen  # not before the grace
            assert ("degraded" in {s for _, _, s in seen[:-1]}) or took < 0.3, seen  # within the grace: degraded
            assert (body["status"], body["receiving"], body["broker"]) == ("down", False, False)
            assert "broker_lost" in body["reasons"] and body["components"]["broker"]["state"] == "down"
            since = body["since"]  # stale since when the broker went, not since the grace ran out
            assert abs(_epoch(since) - stopped) < 1.0, (since, stopped)

            [alert] = await eventually(lambda: _hub_alerts(run, state="open"), timeout=5, what="a hub alert")
            assert (alert["site"], alert["kind"], alert["code"], alert["severity"], alert["device"]) == (
                "*", "hub", "broker_lost", "critical", settings.mqtt_client_id)
            assert (alert["title"], alert["title_en"]) == (HUB_FAULTS["broker_lost"].zh, HUB_FAULTS["broker_lost"].en)
            on_wall = (await run.api.get("/api/alerts", params={"site": run.site, "state": "open"})).json()
            assert [a["id"] for a in on_wall] == [alert["id"]]  # a one-site wall shows it too
            await eventually(lambda: [(b["code"], b["state"]) for b in hook.bodies] == [("broker_lost", "open")],
                             what="the webhook to hear of it")

            _start_again(broker)
            await eventually(lambda: _health_code(run, 200), timeout=40, what="health 200 once the broker is back")
            code, body, _ = await _health(run)
            assert (code, body["status"], body["receiving"], body["broker"]) == (200, "ok", True, True)
            await eventually(lambda: _hub_alerts(run, state="resolved"), timeout=5, what="the hub alert resolved")
            assert await _hub_alerts(run, state="open") == []
            await eventually(lambda: [b["state"] for b in hook.bodies] == ["open", "resolved"],
                             what="the webhook to hear it resolved")
    finally:
        hook.close()
        broker.service.stop()


async def _health_code(run: HubRun, want: int) -> bool:
    return (await _health(run))[0] == want


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_a_hung_store_never_makes_health_wait_and_is_said_down(
    mosquitto: Broker, root: str, tmp_path: Path
) -> None:
    influx = start_influxd(tmp_path / "influx")
    settings = hub_settings(mosquitto, root, tmp_path / "data", influx.url, broker_grace_s=GRACE_S)
    pid = influx.service.proc.pid
    try:
        async with running_hub(settings, mosquitto) as run:
            topic = run.topic("access", "door-1", "event")
            event = {"type": "access", "method": "card", "subject": "s1", "result": "granted"}
            await run.publish_many([(topic, event | {"id": f"a{i}"}) for i in range(5)])
            await run.stored()

            os.kill(pid, signal.SIGSTOP)
            stopped = time.monotonic()
            # Writes now hang in the store's socket (its timeout is 10 s); health must not.
            await run.publish_many([(topic, event | {"id": f"b{i}"}) for i in range(5)])
            slowest = 0.0
            while time.monotonic() - stopped < 12:
                code, body, took = await _health(run)
                slowest = max(slowest, took)
                if body["components"]["store"]["state"] == "down":
                    break
            assert body["components"]["store"]["state"] == "down", body
            assert (code, body["status"], body["store"], body["receiving"]) == (200, "degraded", False, True)
            assert "store_lost" in body["reasons"]
            said_down_after = time.monotonic() - stopped
            assert said_down_after < 5, f"store said down only after {said_down_after:.1f} s"
            for _ in range(10):  # and it keeps answering at once while the store stays hung
                slowest = max(slowest, (await _health(run))[2])
            print(f"health answered in at most {slowest * 1000:.0f} ms with InfluxDB stopped;"
                  f" store said down after {said_down_after:.1f} s")
            assert slowest < 1.0, f"health took {slowest:.2f} s with the store hung"
            [alert] = await eventually(lambda: _hub_alerts(run, state="open"), timeout=GRACE_S + 4,
                                       what="a store_lost hub alert")
            assert (alert["code"], alert["severity"]) == ("store_lost", "major")

            os.kill(pid, signal.SIGCONT)
            await eventually(lambda: _store_ok(run), timeout=40, what="store up again in health")
            await run.stored()
            await eventually(lambda: _hub_alerts(run, state="resolved"), timeout=5, what="the store alert resolved")
    finally:
        os.kill(pid, signal.SIGCONT)
        influx.close()


async def _store_ok(run: HubRun) -> bool:
    code, body, _ = await _health(run)
    return code == 200 and body["store"] is True and body["status"] == "ok"
