"""InfluxDB hung (SIGSTOP) for 30 s, and killed for 30 s, under QoS 1 load.

The outbox takes everything while the store is away; once it is back the writer
starts again within 2 s (issue 10: not after a backoff of up to 30 s), `/api/health`
answers within 1 s throughout (a hung store must not hang the probe), and in
the end every message is stored exactly once: a batch InfluxDB took just before
the hang or the kill and the hub then retried is the same points at the same
times, so it overwrites itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.faults.conftest import Figures, finish
from tests.support.hub_process import HubProcess
from tests.support.influx_fixtures import Influxd
from tests.support.load import LoadPublisher

pytestmark = pytest.mark.services

OUTAGE_S = 30.0
RESUME_WITHIN_S = 2.0
HEALTH_WITHIN_S = 1.0


def timed_health(hub: HubProcess) -> float:
    """Seconds /api/health took to answer (its 2 s client timeout when it did not)."""
    started = time.monotonic()
    hub.health()
    return time.monotonic() - started


def writer_resumed(hub: HubProcess, limit_s: float = 40.0) -> float | None:
    """Seconds until the hub writes points again, or None within `limit_s`."""
    before = hub.metric("smarthub_write_points_total")
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if hub.metric("smarthub_write_points_total") > before:
            return time.monotonic() - started
        time.sleep(0.05)
    return None


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["SIGSTOP", "SIGKILL"])
def test_store_away_for_30_s_under_load(
    how: str, fault_influxd: Influxd, hub_process: Callable[[str], HubProcess], load: Callable[[], LoadPublisher],
    figures: Figures,
) -> None:
    hub = hub_process(fault_influxd.url)
    hub.start()
    publisher = load()
    time.sleep(3)
    if how == "SIGSTOP":
        fault_influxd.pause()
    else:
        fault_influxd.kill()
    away = time.monotonic()
    health_s = []
    while time.monotonic() - away < OUTAGE_S:
        health_s.append(timed_health(hub))
        time.sleep(0.5)
    outbox = hub.metric("smarthub_outbox_points")
    if how == "SIGSTOP":
        fault_influxd.resume()
    else:
        fault_influxd.start()  # returns once /ping answers
    httpx.get(f"{fault_influxd.url}/ping", timeout=5).raise_for_status()
    resumed = writer_resumed(hub)
    shown = f"{resumed:.2f} s" if resumed is not None else "not within 40 s"
    figures.add(f"{how} {OUTAGE_S:.0f} s: outbox {outbox:.0f} points at the end of it; health answered in "
                f"max {max(health_s):.2f} s; writer wrote again {shown} after the store answered /ping")
    time.sleep(2)
    report = finish(publisher, hub, fault_influxd.url, figures)

    problems = []
    if max(health_s) > HEALTH_WITHIN_S:
        problems.append(f"/api/health took {max(health_s):.2f} s with the store {how}ed (limit {HEALTH_WITHIN_S} s)")
    if resumed is None or resumed > RESUME_WITHIN_S:
        problems.append(f"writer did not resume within {RESUME_WITHIN_S} s of the store's return")
    if not report.exactly_once:
        problems.append(f"not every message stored exactly once: {report.summary()}")
    assert not problems, "; ".join(problems) + " (figures: 'fault-injection figures' at the end of the run)"
