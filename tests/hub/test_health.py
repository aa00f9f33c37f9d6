"""The health assessment is a pure function of a snapshot: every rule of 200/503 in one table."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from hub.alerts.models import HUB_FAULTS
from hub.health import Report, Snapshot, assess, due_alerts
from hub.supervisor import TaskStatus

pytestmark = pytest.mark.unit

NOW = 1_000.0


def Task(name: str, state: str, since: float = 900.0, restarts: int = 0,  # noqa: N802 - reads like the type
         last_error: str | None = None) -> TaskStatus:
    return TaskStatus(name, state, since, restarts, last_error)  # type: ignore[arg-type]


def snap(**changes: Any) -> Snapshot:
    base = Snapshot(now=NOW, broker_connected=True, broker_since=800.0, writer_since=700.0, probe_since=750.0,
                    tasks=(Task("mqtt-link", "running"), Task("outbox-writer", "running")), broker_grace_s=5.0)
    return replace(base, **changes)


# (what, snapshot changes, status, receiving, problems, component states broker/store/outbox/tasks)
CASES = [
    ("all well", {}, "ok", True, {}, "ok ok ok ok"),
    ("broker lost within the grace", {"broker_connected": False, "broker_since": NOW - 2}, "degraded", True,
     {"broker_lost": False}, "down ok ok ok"),
    ("broker lost at the grace", {"broker_connected": False, "broker_since": NOW - 5}, "down", False,
     {"broker_lost": True}, "down ok ok ok"),
    ("broker lost past the grace", {"broker_connected": False, "broker_since": NOW - 60, "broker_error": "refused"},
     "down", False, {"broker_lost": True}, "down ok ok ok"),
    ("no grace at all", {"broker_connected": False, "broker_since": NOW, "broker_grace_s": 0.0}, "down", False,
     {"broker_lost": True}, "down ok ok ok"),
    ("held for back-pressure", {"held": True}, "down", False, {"ingest_held": True}, "down ok ok ok"),
    ("store write failed, outbox has room", {"writer_up": False, "writer_since": NOW - 30}, "degraded", True,
     {"store_lost": False}, "ok down ok ok"),
    ("store does not answer the probe, outbox has room", {"probe_up": False, "probe_since": NOW - 3}, "degraded",
     True, {"store_lost": False}, "ok down ok ok"),
    ("store down, outbox near its cap", {"writer_up": False, "outbox_near_full": True, "outbox_fill": 0.92},
     "down", False, {"store_lost": False, "outbox_near_full": True}, "ok down degraded ok"),
    ("store up, outbox near its cap (catching up)", {"outbox_near_full": True, "outbox_fill": 0.91}, "degraded",
     True, {"outbox_near_full": False}, "ok ok degraded ok"),
    ("outbox at its cap", {"outbox_near_full": True, "outbox_full": True, "outbox_fill": 1.0}, "down", False,
     {"outbox_near_full": True}, "ok ok down ok"),
    ("a task restarting", {"tasks": (Task("mqtt-link", "restarting", 990.0, 2, "ConnectionResetError()"),
                                     Task("outbox-writer", "running"))},
     "down", False, {"task_failing": True}, "ok ok ok down"),
    ("a task stopped", {"tasks": (Task("mqtt-link", "stopped"),)}, "down", False, {"task_failing": True},
     "ok ok ok down"),
    ("a one-shot task done", {"tasks": (Task("mqtt-link", "running"), Task("vehicles-inside", "done"))}, "ok", True,
     {}, "ok ok ok ok"),
    ("everything at once", {"broker_connected": False, "broker_since": NOW - 9, "probe_up": False,
                            "outbox_near_full": True, "tasks": (Task("notifier", "restarting"),)},
     "down", False, {"broker_lost": True, "store_lost": False, "outbox_near_full": True, "task_failing": True},
     "down down degraded down"),
]


@pytest.mark.parametrize(("what", "changes", "status", "receiving", "problems", "states"), CASES,
                         ids=[c[0] for c in CASES])
def test_assessment(what: str, changes: dict[str, Any], status: str, receiving: bool, problems: dict[str, bool],
                    states: str) -> None:
    report = assess(snap(**changes))
    assert (report.status, report.receiving, report.http_status) == (status, receiving, 200 if receiving else 503)
    assert {code: p.blocking for code, p in report.problems.items()} == problems
    assert " ".join(report.components[c].state for c in ("broker", "store", "outbox", "tasks")) == states
    assert set(report.problems) <= set(HUB_FAULTS)  # every problem has a titled hub alert


def test_details_say_what_and_why() -> None:
    report = assess(snap(broker_connected=False, broker_since=NOW - 12, broker_error="Connection refused",
                         tasks=(Task("mqtt-link", "restarting", 995.0, 3, "OSError('reset')"),)))
    assert report.components["broker"].detail == "lost 12 s ago: Connection refused"
    assert report.components["tasks"].detail == "mqtt-link restarting (3 restarts): OSError('reset')"
    store = assess(snap(writer_up=False, writer_error="timed out", outbox_points=1234, outbox_bytes=2_500_000,
                        outbox_fill=0.4))
    assert store.components["store"].detail == "unavailable: timed out; the outbox is buffering"
    assert store.components["outbox"].detail == "1,234 points waiting, 2.5 MB, 40% of its cap"


def test_since_comes_from_the_sources_where_they_know_it() -> None:
    report = assess(snap(broker_connected=False, broker_since=NOW - 3, writer_up=False, writer_since=NOW - 20,
                         probe_up=False, probe_since=NOW - 8))
    assert report.components["broker"].since == NOW - 3
    assert report.components["store"].since == NOW - 20  # the earlier of the two that saw it down
    assert report.since == NOW - 20  # degraded since the first problem
    assert assess(snap()).components["store"].since == 750.0  # up since the later of the two saw it up


def test_stale_since_is_when_the_broker_went_not_when_the_grace_ran_out() -> None:
    lost = NOW - 2
    first = assess(snap(broker_connected=False, broker_since=lost))
    assert (first.status, first.since) == ("degraded", lost)
    later = assess(snap(now=NOW + 10, broker_connected=False, broker_since=lost), first)
    assert (later.status, later.since) == ("down", lost)


def test_states_without_a_source_date_are_dated_by_the_reports() -> None:
    first = assess(snap(outbox_near_full=True))
    assert first.components["outbox"].since == NOW and first.problems["outbox_near_full"].since == NOW
    later = assess(snap(now=NOW + 30, outbox_near_full=True), first)
    assert later.components["outbox"].since == NOW and later.problems["outbox_near_full"].since == NOW
    back = assess(snap(now=NOW + 40), later)
    assert back.components["outbox"].since == NOW + 40 and back.status == "ok"


def test_a_hold_that_ends_dates_the_broker_ok_from_then_not_from_the_connect() -> None:
    held = assess(snap(held=True))
    released = assess(snap(now=NOW + 15), held)
    assert held.components["broker"].since == NOW
    assert released.components["broker"].since == NOW + 15  # connected at 800, but reading again only now


def _report(**changes: Any) -> Report:
    return assess(snap(**changes))


@pytest.mark.parametrize(("changes", "at", "due"), [
    ({}, NOW, set()),
    ({"broker_connected": False, "broker_since": NOW - 1}, NOW, set()),  # within the grace: not yet news
    ({"broker_connected": False, "broker_since": NOW - 6}, NOW, {"broker_lost"}),
    ({"writer_up": False, "writer_since": NOW - 1}, NOW, set()),
    ({"writer_up": False, "writer_since": NOW - 1}, NOW + 5, {"store_lost"}),  # lasted the grace
    ({"tasks": (Task("notifier", "restarting"),)}, NOW, {"task_failing"}),  # stops ingest: at once
    ({"held": True}, NOW, {"ingest_held"}),
    ({"writer_up": False, "writer_since": NOW - 100, "outbox_near_full": True}, NOW,
     {"store_lost", "outbox_near_full"}),
])
def test_which_hub_alerts_are_due(changes: dict[str, Any], at: float, due: set[str]) -> None:
    assert set(due_alerts(_report(**changes), at, 5.0)) == due
