"""One fault at a time, with what the hub did about it: shared by tests/faults and bench/ordeal.py.

Each function breaks one real process (the broker, the hub, InfluxDB) while the
load keeps running, brings it back, and returns the figures a verdict needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tests.support.hub_process import HubProcess, metric
from tests.support.influx_fixtures import Influxd
from tests.support.mqtt_fixtures import Broker

RECONNECT_LIMIT_S = 15.0
"""How long to wait for a hub to come back before calling it gone (the verdict's limit is lower)."""


@dataclass(frozen=True)
class BrokerRound:
    kill: bool
    reconnect_s: float | None
    """from the broker listening again to the hub reporting a new connection; None: not within the limit"""
    health_down: tuple[int, ...]
    """/api/health statuses polled while the broker was down, past the grace (0: no answer within 2 s)"""
    health_after: int
    """/api/health once reconnected (polled until 200, for up to 5 s)"""

    def ok(self, within_s: float) -> bool:
        return (self.reconnect_s is not None and self.reconnect_s <= within_s and bool(self.health_down)
                and all(s == 503 for s in self.health_down) and self.health_after == 200)

    def line(self) -> str:
        back = f"{self.reconnect_s:.2f} s" if self.reconnect_s is not None else f"not within {RECONNECT_LIMIT_S:.0f} s"
        return (f"broker {'SIGKILL' if self.kill else 'SIGTERM'}: hub reconnected {back} after the broker listened; "
                f"health while down {sorted(set(self.health_down))}, after {self.health_after}")


def wait_reconnected(hub: HubProcess, connects_before: float, since: float,
                     limit_s: float = RECONNECT_LIMIT_S) -> float | None:
    """Seconds from `since` (time.time()) until the hub reports a new MQTT connection, or None."""
    while time.time() < since + limit_s:
        try:
            text = hub.metrics_text()
        except Exception:  # noqa: BLE001 - a hub too busy to answer is not back yet
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


def restart_broker(broker: Broker, hub: HubProcess, kill: bool, down_s: float, grace_s: float) -> BrokerRound:
    """Stop the broker (SIGTERM or SIGKILL) for `down_s`, watching health past `grace_s`; start it; time the hub."""
    connects = hub.metric("smarthub_mqtt_connects_total")
    broker.stop(kill=kill)
    down_at = time.monotonic()
    time.sleep(grace_s + 0.3)
    statuses = []
    while time.monotonic() - down_at < down_s:
        statuses.append(hub.health())
        time.sleep(0.1)
    listening = broker.start()
    reconnect = wait_reconnected(hub, connects, listening)
    after = health_until(hub, 200, limit_s=5) if reconnect is not None else hub.health()
    return BrokerRound(kill, reconnect, tuple(statuses), after)


@dataclass(frozen=True)
class HubKill:
    accepted: float
    """messages the killed hub had accepted in its life"""
    back_s: float
    """from the new start to the API answering with MQTT connected"""

    def line(self) -> str:
        return f"hub SIGKILL after {self.accepted:.0f} accepted; back and connected {self.back_s:.1f} s after its start"


def kill_hub(hub: HubProcess, down_s: float) -> HubKill:
    accepted = hub.metric("smarthub_messages_accepted_total")
    hub.kill()
    time.sleep(down_s)
    started = time.monotonic()
    hub.start()
    return HubKill(accepted, time.monotonic() - started)


@dataclass(frozen=True)
class StoreOutage:
    how: str
    seconds: float
    outbox_peak: float
    health_max_s: float
    resumed_s: float | None
    """from InfluxDB answering /ping again to the hub's next write; None: not within 40 s"""

    def line(self) -> str:
        back = f"{self.resumed_s:.2f} s" if self.resumed_s is not None else "not within 40 s"
        return (f"InfluxDB {self.how} {self.seconds:.0f} s: outbox peak {self.outbox_peak:.0f} points; health answered "
                f"in max {self.health_max_s:.2f} s; writer wrote again {back} after the store answered")


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


def store_outage(influxd: Influxd, hub: HubProcess, how: str, seconds: float) -> StoreOutage:
    """InfluxDB SIGSTOPped (hung) or SIGKILLed (gone) for `seconds`, then back; health timed meanwhile."""
    if how == "SIGSTOP":
        influxd.pause()
    elif how == "SIGKILL":
        influxd.kill()
    else:
        raise ValueError(how)
    away = time.monotonic()
    health_s, outbox = [], 0.0
    while time.monotonic() - away < seconds:
        health_s.append(timed_health(hub))
        outbox = max(outbox, hub.metric("smarthub_outbox_points"))
        time.sleep(0.5)
    if how == "SIGSTOP":
        influxd.resume()
    else:
        influxd.start()  # returns once /ping answers
    return StoreOutage(how, seconds, outbox, max(health_s), writer_resumed(hub))
