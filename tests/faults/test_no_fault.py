"""The harness itself: the same load, the same hub subprocess and the same count, with nothing broken.

If this fails, the fault tests' verdicts mean nothing (the publisher, the pacing or
the InfluxDB count is wrong, or the hub cannot take 2,500 msg/s at all).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.faults.conftest import RATE, Figures, finish
from tests.support.hub_process import HubProcess
from tests.support.load import LoadPublisher

pytestmark = [pytest.mark.integration, pytest.mark.services]


@pytest.mark.timeout(90)
def test_without_faults_every_message_is_stored_exactly_once(
    influxd: str, hub_process: Callable[[str], HubProcess], load: Callable[[], LoadPublisher], figures: Figures,
) -> None:
    hub = hub_process(influxd)
    hub.start()
    publisher = load()
    time.sleep(5)
    report = finish(publisher, hub, influxd, figures)
    assert report.published >= 5 * RATE * 0.9, f"the publisher fell behind its pace: {report.summary()}"
    assert report.exactly_once, report.summary()
    assert hub.health() == 200
