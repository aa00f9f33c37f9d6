"""Work orders: created from alerts, worked through dispatch, arrival and resolution, timed against SLAs."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.alerts.desk import OrderDesk
from hub.alerts.models import TransitionError
from hub.alerts.orders import Sla, WorkOrder, report
from hub.alerts.store import OrderStore
from tests.hub.alerts.test_engine import T0, Rig

pytestmark = pytest.mark.unit

MIN = 60_000


@pytest.fixture
def desk(tmp_path: Path) -> tuple[Rig, OrderDesk, list[WorkOrder]]:
    rig = Rig(tmp_path / "alerts.db")
    changes: list[WorkOrder] = []
    desk = OrderDesk(OrderStore(rig.store), rig.engine, changes.append, {"minor": Sla(600, 7200)},
                     clock=lambda: rig.now)
    rig.engine.notify = lambda alert: (rig.sent.append(alert), desk.on_alert(alert))  # type: ignore[assignment]
    return rig, desk, changes


def test_a_trapped_passenger_becomes_an_order_with_an_arrival_deadline(desk) -> None:  # type: ignore[no-untyped-def]
    rig, d, changes = desk
    rig.fault("trapped_passenger", True, detail="between_floors")
    [order] = changes
    assert (order.team, order.state, order.code) == ("elevator-maintenance", "open", "trapped_passenger")
    assert order.arrive_due_ms == T0 + 30 * MIN and order.dispatch_due_ms == T0 + 60 * MIN
    rig.fault("trapped_passenger", True)  # a repeat is not a second order
    assert len(changes) == 1
    rig.now += 5 * MIN
    d.dispatch(order.id, "王师傅", "调度员", None)
    with pytest.raises(TransitionError):
        d.dispatch(order.id, "李工", "调度员", None)
    rig.now += 20 * MIN
    d.arrive(order.id, "王师傅", "到场")
    rig.now += 40 * MIN
    done = d.resolve(order.id, "王师傅", "released the passenger, reset the controller")
    assert done is not None and done.state == "resolved" and done.missed(rig.now) == []
    assert rig.engine.active == {}  # resolving the order resolved its alert
    assert rig.store.find(state="resolved")[0].resolved_by == "王师傅"


def test_minor_alerts_get_orders_only_when_asked(desk) -> None:  # type: ignore[no-untyped-def]
    rig, d, changes = desk
    rig.fault("door_close_fault", True)
    assert changes == []
    [alert] = rig.engine.active.values()
    order = d.open(alert, None, "operator")
    assert order.arrive_due_ms is None and d.open(alert, None, "operator").id == order.id


def test_missed_deadlines_escalate_once_each(desk) -> None:  # type: ignore[no-untyped-def]
    rig, d, changes = desk
    rig.fault("trapped_passenger", True)
    rig.now += 31 * MIN
    assert d.check_overdue() == 1 and changes[-1].escalated == ("arrive",)
    assert d.check_overdue() == 0
    rig.now += 30 * MIN
    d.check_overdue()
    assert changes[-1].escalated == ("arrive", "dispatch")
    assert [n.action for n in changes[-1].notes] == ["created", "overdue", "overdue"]


def test_compliance_report_per_team(desk) -> None:  # type: ignore[no-untyped-def]
    rig, d, changes = desk
    rig.fault("trapped_passenger", True, device="e1")
    rig.fault("trapped_passenger", True, device="e2")
    first, second = changes
    rig.now += 10 * MIN
    d.dispatch(first.id, "a", "ops", None)
    d.arrive(first.id, "a", None)
    d.resolve(first.id, "a", None)
    rig.now += 4 * 60 * MIN
    d.resolve(second.id, "b", None)  # never dispatched in time, never arrived, late
    teams = report(d.store.find(), rig.now)
    assert teams == {"elevator-maintenance": {
        "orders": 2, "resolved": 2, "dispatched_on_time": 0.5, "arrived_on_time": 0.5, "resolved_on_time": 0.5,
        "mean_resolve_s": (10 * 60 + (10 + 240) * 60) / 2}}


def test_deadlines_follow_severity(desk) -> None:  # type: ignore[no-untyped-def]
    rig, d, changes = desk
    rig.fault("door_close_fault", True)  # minor: 10 minutes to dispatch, 2 hours to fix
    order = d.open(next(iter(rig.engine.active.values())), None, "ops")
    assert (order.dispatch_due_ms - T0, order.resolve_due_ms - T0) == (10 * MIN, 120 * MIN)


def test_severity_deadlines_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.config import load

    monkeypatch.setenv("SMARTHUB_SLA_BY_SEVERITY", '{"critical": {"dispatch_s": 900}}')
    sla = load().sla
    assert sla["critical"] == Sla(900, 3 * 3600, 1800) and sla["minor"] == Sla()
