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

import pytest

from tests.faults.conftest import Figures, finish
from tests.support.faults import store_outage
from tests.support.hub_process import HubProcess
from tests.support.influx_fixtures import Influxd
from tests.support.load import LoadPublisher

pytestmark = [pytest.mark.integration, pytest.mark.services]

OUTAGE_S = 30.0
RESUME_WITHIN_S = 2.0
HEALTH_WITHIN_S = 1.0


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
    outage = store_outage(fault_influxd, hub, how, OUTAGE_S)
    figures.add(outage.line())
    time.sleep(2)
    report = finish(publisher, hub, fault_influxd.url, figures)

    problems = []
    if outage.health_max_s > HEALTH_WITHIN_S:
        problems.append(f"/api/health took {outage.health_max_s:.2f} s with the store {how}ed "
                        f"(limit {HEALTH_WITHIN_S} s)")
    if outage.resumed_s is None or outage.resumed_s > RESUME_WITHIN_S:
        problems.append(f"writer did not resume within {RESUME_WITHIN_S} s of the store's return")
    if not report.exactly_once:
        problems.append(f"not every message stored exactly once: {report.summary()}")
    assert not problems, "; ".join(problems) + " (figures: 'fault-injection figures' at the end of the run)"
