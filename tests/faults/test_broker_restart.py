"""Mosquitto restarted 5 times in a row under QoS 1 load, by SIGTERM and by SIGKILL.

Each time the hub must be receiving again within 5 s of the broker listening
(`smarthub_mqtt_connected` 1 and one more `smarthub_mqtt_connects_total`), its
`/api/health` must say 503 while it cannot receive (past the broker grace)
and 200 again after; at the end every published message is stored exactly
once. The broker persists the hub's session (autosave every second), so
messages it queued survive even a SIGKILL; see tests/support/load.py for the
one window no one can close.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.faults.conftest import BROKER_GRACE_S, Figures, finish
from tests.support.hub_process import HubProcess, metric
from tests.support.load import LoadPublisher
from tests.support.mqtt_fixtures import Broker

pytestmark = pytest.mark.services

RESTARTS = 5
DOWN_S = BROKER_GRACE_S + 2.0
"""How long the broker stays down: past the grace, so health has to turn 503."""
RECONNECT_WITHIN_S = 5.0
LOAD_BETWEEN_S = 2.0
"""Load flowing to a connected hub between two restarts (and > the broker's autosave interval)."""


@dataclass
class Round:
    reconnect_s: float | None
    """from the broker listening to the hub connected again; None: not within the wait"""
    health_down: list[int]
    """/api/health statuses while the broker was down and past the grace (0: no answer in 2 s)"""
    health_after: int


def wait_reconnected(hub: HubProcess, connects_before: float, since: float, limit_s: float) -> float | None:
    """Seconds from `since` until the hub reports a new connection, or None after `limit_s`."""
    deadline = since + limit_s
    while time.time() < deadline:
        try:
            text = hub.metrics_text()
        except Exception:  # noqa: BLE001 - a hub too busy to answer is not connected yet
            text = ""
        connected = metric(text, "smarthub_mqtt_connected") == 1
        if connected and metric(text, "smarthub_mqtt_connects_total") > connects_before:
            return time.time() - since
        time.sleep(0.05)
    return None


def health_until(hub: HubProcess, want: int, limit_s: float) -> int:
    """Poll /api/health until it answers `want` or `limit_s` passes; the last status."""
    deadline = time.monotonic() + limit_s
    status = hub.health()
    while status != want and time.monotonic() < deadline:
        time.sleep(0.1)
        status = hub.health()
    return status


def restart_rounds(broker: Broker, hub: HubProcess, kill: bool, figures: Figures) -> list[Round]:
    rounds: list[Round] = []
    for i in range(RESTARTS):
        connects = hub.metric("smarthub_mqtt_connects_total")
        broker.stop(kill=kill)
        down_at = time.monotonic()
        time.sleep(BROKER_GRACE_S + 0.3)
        statuses = []
        while time.monotonic() - down_at < DOWN_S:
            statuses.append(hub.health())
            time.sleep(0.1)
        listening = broker.start()
        reconnect = wait_reconnected(hub, connects, listening, limit_s=15)
        after = health_until(hub, 200, limit_s=5) if reconnect is not None else hub.health()
        rounds.append(Round(reconnect, statuses, after))
        shown = f"{reconnect:.2f} s" if reconnect is not None else "not within 15 s"
        figures.add(f"restart {i + 1}: hub reconnected {shown} after the broker listened; health while down "
                    f"{sorted(set(statuses))}, after {after}")
        if reconnect is None:
            break  # a hub that stays away makes further restarts meaningless; the check below says so
        time.sleep(LOAD_BETWEEN_S)
    return rounds


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

    rounds = restart_rounds(fault_broker, hub, signal_name == "SIGKILL", figures)
    report = finish(publisher, hub, influxd, figures)

    problems = []
    if len(rounds) < RESTARTS or any(r.reconnect_s is None or r.reconnect_s > RECONNECT_WITHIN_S for r in rounds):
        problems.append(f"hub not back within {RECONNECT_WITHIN_S} s of the broker every time")
    if any(503 not in r.health_down or any(s == 200 for s in r.health_down) for r in rounds):
        problems.append(f"/api/health not 503 while the broker was down past the {BROKER_GRACE_S} s grace")
    if any(r.health_after != 200 for r in rounds):
        problems.append("/api/health not 200 again after the reconnect")
    if not report.exactly_once:
        problems.append("not every message stored exactly once")
    assert not problems, "; ".join(problems) + " (figures: 'fault-injection figures' at the end of the run)"
