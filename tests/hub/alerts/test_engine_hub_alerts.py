"""The hub's own alerts (broker lost, store lost, ...): one per problem, on every site's wall, in the contract's
payload, and the work-order desk treats them like any alert without making orders by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices import REGISTRY
from hub.alerts.desk import DEFAULT_TEAM, OrderDesk
from hub.alerts.engine import AlertEngine
from hub.alerts.models import HUB_FAULTS, HUB_KIND, HUB_SITE
from hub.alerts.orders import WorkOrder
from hub.alerts.store import OrderStore
from hub.registry import Registry
from tests.hub.alerts.test_engine import T0, Rig

pytestmark = pytest.mark.unit

CONTRACT_KEYS = {"id", "site", "kind", "device", "code", "severity", "state", "opened_at", "acknowledged_at",
                 "resolved_at", "acknowledged_by", "title", "detail"}


def test_a_hub_problem_opens_one_alert_and_its_end_resolves_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "alerts.db")
    rig.engine.raise_hub("hub-1", "broker_lost", "no connection to the MQTT broker for 6 s")
    rig.now += 1_000
    rig.engine.raise_hub("hub-1", "broker_lost", "no connection to the MQTT broker for 7 s")  # every second: no news
    assert [a.state for a in rig.sent] == ["open"] and rig.engine.hub_codes("hub-1") == {"broker_lost"}
    alert = rig.sent[0]
    assert (alert.site, alert.kind, alert.device, alert.severity, alert.title, alert.title_en) == (
        HUB_SITE, HUB_KIND, "hub-1", HUB_FAULTS["broker_lost"].severity, HUB_FAULTS["broker_lost"].zh,
        HUB_FAULTS["broker_lost"].en)
    assert CONTRACT_KEYS <= set(alert.to_json()) and alert.to_json()["site"] == "*"
    rig.now += 9_000
    rig.engine.clear_hub("hub-1", "broker_lost")
    assert [a.state for a in rig.sent] == ["open", "resolved"] and rig.engine.hub_codes("hub-1") == set()
    assert rig.store.get(alert.id).resolved_ms == T0 + 10_000  # type: ignore[union-attr]


def test_a_sites_alerts_include_the_hubs_own(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "alerts.db")
    rig.fault("door_open_fault", True)  # site s1
    rig.engine.raise_hub("hub-1", "store_lost", "unavailable")
    assert {a.code for a in rig.store.find(site="s1")} == {"door_open_fault", "store_lost"}
    assert {a.code for a in rig.store.find(site="other")} == {"store_lost"}  # every wall shows it
    assert sum(rig.store.count_active("other").values()) == 1
    assert len(rig.store.opened_since(T0 - 1, "other")) == 1


def test_an_alert_left_open_by_an_earlier_run_is_known_so_the_watcher_can_resolve_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "alerts.db")
    rig.engine.raise_hub("hub-1", "task_failing", "notifier restarting")
    again = AlertEngine(REGISTRY, rig.store, rig.live, Registry(), rig.sent.append, lambda: rig.now)
    assert again.hub_codes("hub-1") == {"task_failing"} and again.hub_codes("hub-2") == set()
    again.clear_hub("hub-1", "task_failing")
    assert again.hub_codes("hub-1") == set() and rig.sent[-1].state == "resolved"


def test_the_desk_makes_no_order_by_itself_but_one_when_asked(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "alerts.db")
    orders: list[WorkOrder] = []
    desk = OrderDesk(OrderStore(rig.store), rig.engine, orders.append, clock=lambda: rig.now)
    rig.engine.notify = lambda alert: (rig.sent.append(alert), desk.on_alert(alert))  # type: ignore[assignment]
    rig.engine.raise_hub("hub-1", "broker_lost", "lost")
    assert orders == []
    order = desk.open(rig.sent[0], None, "夜班")
    assert (order.team, order.site, order.severity) == (DEFAULT_TEAM, HUB_SITE, "critical")
    desk.resolve(order.id, "夜班", "broker restarted")
    assert rig.engine.hub_codes("hub-1") == set()
