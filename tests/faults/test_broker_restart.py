"""Mosquitto restarted 5 times in a row under QoS 1 load, by SIGTERM and by SIGKILL.

Each time the hub must be receiving again within 5 s of the broker listening
(`smarthub_mqtt_connected` 1 and one more `smarthub_mqtt_connects_total`), its
`/api/health` must say 503 while it cannot receive (past the broker grace)
and 200 again after; at the end every published message is stored exactly
once. The broker persists the hub's session (autosave every second), so
messages it queued survive even a SIGKILL; see tests/support/load.py for the
window no one can close.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.faults.conftest import BROKER_GRACE_S, Figures, finish
from tests.support.faults import restart_broker
from tests.support.hub_process import HubProcess
from tests.support.load import LoadPublisher
from tests.support.mqtt_fixtures import Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]

RESTARTS = 5
DOWN_S = BROKER_GRACE_S + 2.0
"""How long the broker stays down: past the grace, so health has to turn 503."""
RECONNECT_WITHIN_S = 5.0
LOAD_BETWEEN_S = 2.0
"""Load flowing to a connected hub between two restarts (and > the broker's autosave interval)."""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_broker_restarted_five_times_under_load(
    signal_name: str, fault_broker: Broker, influxd: str, hub_process: Callable[[str], HubProcess],
    load: Callable[[], LoadPublisher], figures: Figures,
) -> None:
    hub = hub_process(influxd)
    hub.start()
    publisher = load()
    time.sleep(LOAD_BETWEEN_S)  # > autosave: the broker has the hub's session on disk before the first kill
    rounds = []
    for i in range(RESTARTS):
        done = restart_broker(fault_broker, hub, signal_name == "SIGKILL", DOWN_S, BROKER_GRACE_S)
        rounds.append(done)
        figures.add(f"restart {i + 1}: {done.line()}")
        if done.reconnect_s is None:
            break  # a hub that stays away makes further restarts meaningless; the verdict says so
        time.sleep(LOAD_BETWEEN_S)
    report = finish(publisher, hub, influxd, figures)

    problems = []
    if len(rounds) < RESTARTS or any(r.reconnect_s is None or r.reconnect_s > RECONNECT_WITHIN_S for r in rounds):
        problems.append(f"hub not back within {RECONNECT_WITHIN_S} s of the broker every time")
    if any(not r.health_down or any(s != 503 for s in r.health_down) for r in rounds):
        problems.append(f"/api/health not 503 throughout the broker's absence past the {BROKER_GRACE_S} s grace")
    if any(r.health_after != 200 for r in rounds):
        problems.append("/api/health not 200 again after the reconnect")
    if not report.exactly_once:
        problems.append(f"not every message stored exactly once: {report.summary()}")
    assert not problems, "; ".join(problems) + " (figures: 'fault-injection figures' at the end of the run)"
