"""Is the hub receiving? A pure assessment of what its parts last said, and the watcher that makes the
hub's own trouble alerts.

`assess` does no I/O: it reads a `Snapshot` of values the hub already holds (the MQTT link, the
writer, the outbox, the supervisor, and the last result of the watcher's own store probe), so
`/api/health` answers at once whatever the store or the broker do. Ingest is *not receiving* (HTTP 503)
when the broker has been lost past a grace period, a supervised task is not running, the store is down
with the outbox near its cap, or MQTT is held for back-pressure. A store outage with room in the outbox
is only `degraded` (200): the outbox is buffering, a restart would not help.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hub.supervisor import TaskStatus

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)

Status = Literal["ok", "degraded", "down"]
WATCH_EVERY_S = 1.0
PROBE_EVERY_S = 2.0
PROBE_TIMEOUT_S = 1.0
"""A store that does not answer /ping within this counts as down (a SIGSTOPped InfluxDB never answers)."""
NOT_RUNNING = ("restarting", "stopped")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The values the assessment reads, taken at `now` (epoch seconds)."""

    now: float
    broker_connected: bool
    broker_since: float
    broker_error: str | None = None
    held: bool = False
    writer_up: bool = True
    """The writer's last write reached the store."""
    writer_since: float = 0.0
    writer_error: str | None = None
    probe_up: bool = True
    """The store answered the watcher's last /ping in time."""
    probe_since: float = 0.0
    probe_error: str | None = None
    outbox_points: int = 0
    outbox_bytes: int = 0
    outbox_fill: float = 0.0
    outbox_near_full: bool = False
    outbox_full: bool = False
    tasks: tuple[TaskStatus, ...] = ()
    broker_grace_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Component:
    state: Status
    since: float
    detail: str


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong; `code` is the hub alert it becomes (hub.alerts.models.HUB_FAULTS)."""

    code: str
    since: float
    detail: str
    blocking: bool
    """Ingest is not receiving because of it."""


@dataclass(frozen=True, slots=True)
class Report:
    status: Status
    since: float
    """Since when the status is what it is: for `down`, since when the data on the screens is stale."""
    receiving: bool
    components: Mapping[str, Component]
    problems: Mapping[str, Problem]

    @property
    def http_status(self) -> int:
        return 200 if self.receiving else 503


def _began(now: float, hint: float | None, same: bool, before: float | None) -> float:
    """When a state began. `hint` is what its source says (e.g. when MQTT last changed), `before` what the
    previous report said; a state the sources cannot date began when a report first saw it."""
    if before is None:
        return hint if hint is not None else now
    if same:
        return before if hint is None else max(before, hint)
    return hint if hint is not None and hint >= before else now


def assess(snap: Snapshot, previous: Report | None = None) -> Report:
    """The hub's health from a snapshot; `previous` (the last report) dates what the snapshot cannot."""
    now = snap.now
    before_c = previous.components if previous else {}
    before_p = previous.problems if previous else {}
    components: dict[str, Component] = {}
    problems: dict[str, Problem] = {}

    def component(name: str, state: Status, hint: float | None, detail: str) -> None:
        old = before_c.get(name)
        since = _began(now, hint, old is not None and old.state == state, old.since if old else None)
        components[name] = Component(state, since, detail)

    def problem(code: str, hint: float | None, detail: str, blocking: bool) -> None:
        old = before_p.get(code)
        problems[code] = Problem(code, _began(now, hint, old is not None, old.since if old else None), detail,
                                 blocking)

    if not snap.broker_connected:
        lost_s = now - snap.broker_since
        why = f": {snap.broker_error}" if snap.broker_error else ""
        component("broker", "down", snap.broker_since, f"lost {lost_s:.0f} s ago{why}")
        problem("broker_lost", snap.broker_since, f"no connection to the MQTT broker for {lost_s:.0f} s{why}",
                blocking=lost_s >= snap.broker_grace_s)
    elif snap.held:
        component("broker", "down", None, "connected, but held: the hub stops reading and the broker queues")
        problem("ingest_held", None, "the outbox is at its cap: MQTT is held (back-pressure), the broker queues",
                blocking=True)
    else:
        component("broker", "ok", snap.broker_since, "connected")

    store_up = snap.writer_up and snap.probe_up
    if store_up:
        component("store", "ok", max(snap.writer_since, snap.probe_since), "answering")
    else:
        downs = [(s, e) for up, s, e in ((snap.writer_up, snap.writer_since, snap.writer_error),
                                          (snap.probe_up, snap.probe_since, snap.probe_error)) if not up]
        since = min(s for s, _ in downs)
        why = next((e for _, e in downs if e), None)
        detail = f"unavailable{f': {why}' if why else ''}; the outbox is buffering"
        component("store", "down", since, detail)
        problem("store_lost", since, detail, blocking=False)

    size = f"{snap.outbox_points:,} points waiting, {snap.outbox_bytes / 1e6:.1f} MB, {snap.outbox_fill:.0%} of its cap"
    if snap.outbox_full or snap.outbox_near_full:
        component("outbox", "down" if snap.outbox_full else "degraded", None, size)
        problem("outbox_near_full", None, f"{'at' if snap.outbox_full else 'near'} its cap: {size}",
                blocking=snap.outbox_full or not store_up)
    else:
        component("outbox", "ok", None, size)

    failing = [t for t in snap.tasks if t.state in NOT_RUNNING]
    if failing:
        detail = "; ".join(f"{t.name} {t.state} ({t.restarts} restarts)" + (f": {t.last_error}" if t.last_error else "")
                           for t in failing)
        since = min(t.since for t in failing)
        component("tasks", "down", since, detail)
        problem("task_failing", since, detail, blocking=True)
    else:
        restarts = sum(t.restarts for t in snap.tasks)
        running = sum(t.state == "running" for t in snap.tasks)
        component("tasks", "ok", max((t.since for t in snap.tasks), default=None),
                  f"{running} running, {len(snap.tasks) - running} done, {restarts} restarts")

    blocking = [p for p in problems.values() if p.blocking]
    status: Status = "down" if blocking else "degraded" if problems else "ok"
    hint = min((p.since for p in blocking or problems.values()), default=None)
    since = _began(now, hint, previous is not None and previous.status == status,
                   previous.since if previous else None)
    return Report(status, since, not blocking, components, problems)


def due_alerts(report: Report, now: float, grace_s: float) -> dict[str, str]:
    """Hub alerts that should be open: a problem that stops ingest at once, any other once it lasted
    `grace_s` (a store that misses one ping is not news); code -> detail."""
    return {code: p.detail for code, p in report.problems.items() if p.blocking or now - p.since >= grace_s}


class HealthWatch:
    """Probes the store in the background and turns the hub's health into its own alerts, every second."""

    def __init__(self, hub: Hub, every_s: float = WATCH_EVERY_S, probe_every_s: float = PROBE_EVERY_S,
                 probe_timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self.hub = hub
        self.every_s = every_s
        self.probe_every_s = probe_every_s
        self.probe_timeout_s = probe_timeout_s
        self.last: Report | None = None
        self.probe_up = True
        self.probe_since = time.time()
        self.probe_error: str | None = None

    def snapshot(self) -> Snapshot:
        hub = self.hub
        mqtt, stats, outbox = hub.mqtt, hub.writer.stats, hub.outbox
        return Snapshot(
            now=time.time(), broker_connected=mqtt.connected, broker_since=mqtt.since, broker_error=mqtt.last_error,
            held=mqtt.held is not None, writer_up=stats.store_up, writer_since=stats.store_since,
            writer_error=stats.last_error, probe_up=self.probe_up, probe_since=self.probe_since,
            probe_error=self.probe_error, outbox_points=outbox.depth, outbox_bytes=outbox.size_bytes,
            outbox_fill=outbox.fill, outbox_near_full=outbox.near_full, outbox_full=outbox.full,
            tasks=tuple(hub.supervisor.status().values()), broker_grace_s=hub.settings.broker_grace_s)

    def report(self) -> Report:
        """The health now (never waits for anything); what `/api/health` answers."""
        self.last = assess(self.snapshot(), self.last)
        return self.last

    def check(self) -> Report:
        """Open the hub alerts that are due, resolve those whose problem is gone."""
        report = self.report()
        due = due_alerts(report, time.time(), self.hub.settings.broker_grace_s)
        engine, device = self.hub.alerts, self.hub.settings.mqtt_client_id
        for code, detail in due.items():
            engine.raise_hub(device, code, detail)
        for code in engine.hub_codes(device) - due.keys():
            engine.clear_hub(device, code)
        return report

    async def probe(self) -> None:
        """Ask the store whether it answers, for at most `probe_timeout_s`."""
        try:
            up = await asyncio.wait_for(self.hub.storage.ping(), self.probe_timeout_s)
            error = None if up else "ping failed"
        except TimeoutError:
            up, error = False, f"no answer to a ping within {self.probe_timeout_s:g} s"
        if up != self.probe_up:
            self.probe_since = time.time()
            log.warning("store %s", "answers again" if up else f"does not answer: {error}")
        self.probe_up, self.probe_error = up, error

    async def _probe_loop(self) -> None:
        while True:
            await self.probe()
            await asyncio.sleep(self.probe_every_s)

    async def _check_loop(self) -> None:
        while True:
            self.check()
            await asyncio.sleep(self.every_s)

    async def run(self) -> None:
        """Probe and check until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._probe_loop(), name="store-probe")
            tasks.create_task(self._check_loop(), name="health-check")
