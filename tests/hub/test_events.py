"""The event dispatcher: every handler runs, a failing one is named in the log once per interval and counted."""

from __future__ import annotations

import logging

import pytest

from hub.events import AlertChanged, Events, MessageAccepted, OrderChanged, PointsRejected
from hub.ratelog import RateGate

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_handler_is_counted_logged_by_name_and_the_others_still_run(
        caplog: pytest.LogCaptureFixture) -> None:
    events = Events()
    heard: list[str] = []

    def broken(event: PointsRejected) -> None:
        raise RuntimeError("bug in a receiver")

    events.on(PointsRejected, "first", lambda e: heard.append("first"))
    events.on(PointsRejected, "broken", broken)
    events.on(PointsRejected, "last", lambda e: heard.append(e.reason))
    with caplog.at_level(logging.ERROR, "hub.events"):
        events.emit(PointsRejected((b"m f=1",), "field type conflict"))
    assert heard == ["first", "field type conflict"]
    assert events.errors == {("PointsRejected", "broken"): 1}
    [record] = caplog.records
    assert "'broken'" in record.getMessage() and "PointsRejected" in record.getMessage()
    assert record.exc_info is not None and "bug in a receiver" in str(record.exc_info[1])


def test_a_handler_failing_on_every_event_logs_once_per_interval_then_reports_the_count(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    events = Events(RateGate(10.0, clock))

    def broken(msg: object, state: object) -> None:
        raise ValueError("every time")

    events.on_message("broken", broken)
    with caplog.at_level(logging.ERROR, "hub.events"):
        for _ in range(500):
            events.emit(MessageAccepted(None, None))  # type: ignore[arg-type]
        assert len(caplog.records) == 1
        clock.now += 11
        events.report()
    assert events.errors[("MessageAccepted", "broken")] == 500
    assert "499 more times" in caplog.records[-1].getMessage()


def test_handlers_hear_only_their_own_event_type_in_the_order_registered() -> None:
    events = Events()
    heard: list[object] = []
    events.on(AlertChanged, "a", lambda e: heard.append(("a", e)))
    events.on(AlertChanged, "b", lambda e: heard.append(("b", e)))
    events.on(OrderChanged, "orders", lambda e: heard.append(("orders", e)))
    events.on(AlertChanged, "first", lambda e: heard.append(("first", e)), before="a")
    change = AlertChanged(None)  # type: ignore[arg-type]
    events.emit(change)
    assert heard == [("first", change), ("a", change), ("b", change)]
    assert events.handlers(AlertChanged) == ["first", "a", "b"] and events.handlers(OrderChanged) == ["orders"]
    with pytest.raises(ValueError, match="nobody"):
        events.on(AlertChanged, "c", lambda e: None, before="nobody")


def test_a_name_is_registered_once_per_event_and_message_handlers_have_their_own_call() -> None:
    events = Events()
    events.on(AlertChanged, "notifier", lambda e: None)
    events.on(OrderChanged, "notifier", lambda e: None)  # the same name for another event is fine
    with pytest.raises(ValueError, match="notifier"):
        events.on(AlertChanged, "notifier", lambda e: None)
    with pytest.raises(TypeError, match="on_message"):
        events.on(MessageAccepted, "engine", lambda e: None)
