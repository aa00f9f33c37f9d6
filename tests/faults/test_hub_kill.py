"""The hub SIGKILLed under QoS 1 load 3 times, restarted each time on the same data dir and client id.

A crash at any moment must lose nothing (a QoS 1 message is acknowledged only
once it is in the outbox, so the broker redelivers the rest to the persistent
session) and store nothing twice (the redelivered messages include ones already
in the outbox: telemetry keeps its `ts`, but an event without `ts` gets a new
receive time, so only a de-duplication that survives the restart keeps it once).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.faults.conftest import Figures, finish
from tests.support.faults import kill_hub
from tests.support.hub_process import HubProcess
from tests.support.load import LoadPublisher

pytestmark = [pytest.mark.integration, pytest.mark.services]

KILLS = 3
LOAD_BETWEEN_S = 3.0
DOWN_S = 1.0


@pytest.mark.timeout(150)
def test_hub_sigkilled_three_times_under_load(
    influxd: str, hub_process: Callable[[str], HubProcess], load: Callable[[], LoadPublisher], figures: Figures,
) -> None:
    hub = hub_process(influxd)
    hub.start()
    publisher = load()
    for i in range(KILLS):
        time.sleep(LOAD_BETWEEN_S)
        figures.add(f"kill {i + 1}: {kill_hub(hub, DOWN_S).line()}")
    time.sleep(LOAD_BETWEEN_S)
    report = finish(publisher, hub, influxd, figures)
    assert report.exactly_once, (f"not every message stored exactly once: {report.summary()} "
                                 "(figures: 'fault-injection figures' at the end of the run)")
