"""The alert lifecycle with an injected clock: faults, offline, ack and resolve, restarts."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from devices import REGISTRY
from devices.base import Accepted
from hub.alerts.engine import AlertEngine
from hub.alerts.models import Alert, TransitionError
from hub.alerts.store import AlertStore
from hub.registry import Registry
from hub.state import LiveState

pytestmark = pytest.mark.unit

T0 = 1_790_000_000_000


class Rig:
    def __init__(self, path: Path) -> None:
        self.now = T0
        self.live = LiveState(heartbeat_s=300)
        self.sent: list[Alert] = []
        self.store = AlertStore(path)
        self.engine = AlertEngine(REGISTRY, self.store, self.live, Registry(), self.sent.append, lambda: self.now)

    def message(self, kind: str, device: str, channel: str, payload: dict) -> None:  # type: ignore[type-arg]
        model = REGISTRY[kind].validate(channel, orjson.dumps(payload))
        msg = Accepted("s1", kind, device, channel, model, self.now, self.now, 0)
        state = self.live.get(("s1", kind, device))
        self.live.apply(state, msg)
        self.engine.on_message(msg, state)

    def fault(self, code: str, active: bool, device: str = "e1", **extra: object) -> None:
        self.message("elevator", device, "event", {"type": "fault", "code": code, "active": active, **extra})


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path / "alerts.db")


def test_a_fault_opens_one_alert_repeats_count_and_the_clear_resolves(rig: Rig) -> None:
    rig.fault("trapped_passenger", True, detail="between_floors")
    [alert] = rig.engine.active.values()
    assert (alert.severity.value, alert.title, alert.title_en, alert.state) == (
        "critical", "困人", "Passenger trapped", "open")
    rig.now += 5_000
    rig.fault("trapped_passenger", True)
    assert rig.engine.active[alert.key].occurrences == 2 and len(rig.engine.active) == 1
    rig.now += 60_000
    rig.fault("trapped_passenger", False)
    assert rig.engine.active == {}
    resolved = rig.store.get(alert.id)
    assert resolved is not None and resolved.state == "resolved" and resolved.resolved_by == "device"
    assert resolved.resolved_ms == T0 + 65_000
    assert [a.state for a in rig.sent] == ["open", "open", "resolved"]


def test_people_acknowledge_and_resolve_with_notes(rig: Rig) -> None:
    rig.fault("door_close_fault", True)
    [alert] = rig.engine.active.values()
    rig.now += 120_000
    acked = rig.engine.ack(alert.id, "王师傅", "on my way")
    assert acked is not None and acked.state == "acknowledged" and acked.acknowledged_by == "王师傅"
    assert acked.to_json()["acknowledged_at"] is not None
    with pytest.raises(TransitionError):
        rig.engine.ack(alert.id, "someone else", None)
    rig.now += 600_000
    done = rig.engine.resolve(alert.id, "王师傅", "door operator replaced")
    assert done is not None and done.state == "resolved"
    assert [n.action for n in done.notes] == ["opened", "acknowledged", "resolved"]
    with pytest.raises(TransitionError):
        rig.engine.resolve(alert.id, "王师傅", None)
    assert rig.engine.ack("no-such-alert", "x", None) is None
    rig.fault("door_close_fault", True)  # the fault again after the fix: a new alert
    assert next(iter(rig.engine.active.values())).id != alert.id


def test_offline_from_state_and_from_silence_and_back(rig: Rig) -> None:
    rig.message("gate", "g1", "state", {"online": False})
    assert list(rig.engine.active) == [("s1", "gate", "g1", "offline")]
    rig.message("gate", "g1", "state", {"online": False})  # the retained will again: no new occurrence
    assert rig.engine.active[("s1", "gate", "g1", "offline")].occurrences == 1
    rig.message("gate", "g1", "telemetry", {"barrier": "closed"})
    assert rig.engine.active == {}

    rig.message("camera", "c1", "telemetry", {"fps": 25})
    rig.now += 299_000
    assert rig.engine.check_heartbeats() == 0
    rig.now += 2_000
    assert rig.engine.check_heartbeats() == 2 and rig.engine.check_heartbeats() == 0  # the gate is silent too
    assert "silent for 301 s" in (rig.engine.active[("s1", "camera", "c1", "offline")].detail or "")
    rig.message("camera", "c1", "telemetry", {"fps": 25})
    assert list(rig.engine.active) == [("s1", "gate", "g1", "offline")]


def test_alerts_survive_a_restart(rig: Rig, tmp_path: Path) -> None:
    rig.fault("overspeed", True)
    rig.engine.ack(next(iter(rig.engine.active.values())).id, "ops", None)
    rig.store.close()
    again = Rig(tmp_path / "alerts.db")
    [alert] = again.engine.active.values()
    assert (alert.code, alert.state, alert.acknowledged_by) == ("overspeed", "acknowledged", "ops")
    again.fault("overspeed", False)
    assert again.engine.active == {} and again.store.find(state="resolved")[0].id == alert.id


def test_a_stopped_occupied_car_with_its_door_closed_is_a_suspected_trapping(rig: Rig) -> None:
    stuck = {"occupied": True, "running": False, "door": "closed", "floor": 7}
    rig.message("elevator", "e2", "telemetry", stuck)
    rig.now += 29_000
    rig.message("elevator", "e2", "telemetry", stuck)  # still stuck: the deadline stays where it was
    assert rig.engine.check_deadlines() == 0 and rig.engine.active == {}
    rig.now += 1_000
    assert rig.engine.check_deadlines() == 1
    alert = rig.engine.active[("s1", "elevator", "e2", "trapped_suspected")]
    assert (alert.severity.value, alert.title, alert.opened_by) == ("critical", "疑似困人", "rule")
    assert "floor 7" in (alert.detail or "")
    rig.message("elevator", "e2", "telemetry", {"door": "open"})  # released
    assert rig.engine.active == {}
    rig.message("elevator", "e3", "telemetry", stuck)
    rig.now += 10_000
    rig.message("elevator", "e3", "telemetry", {"running": True})  # moved on before the deadline
    rig.now += 60_000
    assert rig.engine.check_deadlines() == 0 and rig.engine.active == {}


def test_repeated_door_faults_call_for_maintenance(rig: Rig) -> None:
    for code in ["door_close_fault", "door_open_fault"]:
        rig.fault(code, True)
        rig.now += 20 * 60_000
    assert ("s1", "elevator", "e1", "door_faults_repeated") not in rig.engine.active
    rig.fault("door_close_fault", True)  # third within the hour (the first is 40 minutes old)
    assert rig.engine.active[("s1", "elevator", "e1", "door_faults_repeated")].severity.value == "major"


def test_rules_never_clear_a_devices_own_fault(rig: Rig) -> None:
    rig.message("charger", "ev1", "event", {"type": "fault", "code": "high_temperature", "active": True})
    rig.message("charger", "ev1", "telemetry", {"temperature_c": 30.0})  # the rule would clear its own only
    assert ("s1", "charger", "ev1", "high_temperature") in rig.engine.active
    rig.message("charger", "ev2", "telemetry", {"temperature_c": 81.5})
    assert "81.5" in (rig.engine.active[("s1", "charger", "ev2", "high_temperature")].detail or "")
    rig.message("charger", "ev2", "telemetry", {"temperature_c": 68.0})  # inside the hysteresis band
    assert ("s1", "charger", "ev2", "high_temperature") in rig.engine.active
    rig.message("charger", "ev2", "telemetry", {"temperature_c": 60.0})
    assert ("s1", "charger", "ev2", "high_temperature") not in rig.engine.active


def test_water_that_never_stops_is_a_leak_alert_and_a_meters_own_leak_stays_its_own(rig: Rig) -> None:
    water = {"utility": "water", "flow_lph": 12.0}
    for _ in range(8):  # a reading every 15 minutes, 2 hours without a pause
        rig.message("meter", "m1", "telemetry", water)
        rig.now += 900_000
    rig.message("meter", "m1", "telemetry", water)
    alert = rig.engine.active[("s1", "meter", "m1", "leak_suspected")]
    assert (alert.severity.value, alert.title, alert.opened_by) == ("major", "疑似漏水", "rule")
    rig.message("meter", "m1", "telemetry", {"flow_lph": 0})
    assert rig.engine.active == {}
    rig.message("meter", "m2", "event", {"type": "fault", "code": "leak_suspected", "active": True})
    rig.message("meter", "m2", "telemetry", {"utility": "water", "flow_lph": 0})
    assert ("s1", "meter", "m2", "leak_suspected") in rig.engine.active, "the rule clears only what it raised"


def test_camera_gate_and_door_rules(rig: Rig) -> None:
    rig.message("camera", "cam1", "event", {"type": "detection", "label": "high_altitude_throw", "phase": "start",
                                             "score": 0.93, "zone": "facade", "snapshot": "http://nvr/1.jpg"})
    throw = rig.engine.active[("s1", "camera", "cam1", "high_altitude_throw")]
    assert throw.severity.value == "critical" and throw.detail == "score 0.93 in facade"
    assert "nvr" not in (throw.detail or ""), "a media link is personal: never in an alert (kept, shown to viewers)"
    rig.message("gate", "g1", "event", {"type": "barrier", "state": "stuck"})
    assert ("s1", "gate", "g1", "barrier_stuck") in rig.engine.active
    rig.message("gate", "g1", "event", {"type": "barrier", "state": "closed"})
    assert ("s1", "gate", "g1", "barrier_stuck") not in rig.engine.active
    rig.message("access", "d1", "telemetry", {"door": "open"})
    rig.now += 121_000
    assert rig.engine.check_deadlines() == 1
    assert ("s1", "access", "d1", "door_held_open") in rig.engine.active


def test_an_unacknowledged_critical_alert_escalates_once(rig: Rig) -> None:
    rig.fault("trapped_passenger", True)
    rig.fault("door_close_fault", True, device="e9")  # minor: never escalates
    rig.now += 299_000
    assert rig.engine.check_escalations() == 0
    rig.now += 1_000
    assert rig.engine.check_escalations() == 1 and rig.engine.check_escalations() == 0
    alert = rig.engine.active[("s1", "elevator", "e1", "trapped_passenger")]
    assert alert.escalated_ms == rig.now and alert.notes[-1].action == "escalated"
    assert alert.to_json()["escalated_at"] is not None
    rig.engine.ack(alert.id, "李工", None)
    assert rig.engine.active[alert.key].state == "acknowledged"


async def test_escalations_also_reach_the_second_line(rig: Rig) -> None:
    from hub.alerts.models import escalate
    from hub.alerts.notify import Notifier

    async def publish(topic: str, payload: bytes, qos: int, retain: bool) -> None:
        pass

    notifier = Notifier("c", publish, ["http://first"], ["http://second"])
    rig.fault("overspeed", True)
    [alert] = rig.engine.active.values()
    notifier(alert)
    assert (notifier._hooks["http://first"].qsize(), notifier._hooks["http://second"].qsize()) == (1, 0)
    notifier(escalate(alert, rig.now))
    assert (notifier._hooks["http://first"].qsize(), notifier._hooks["http://second"].qsize()) == (2, 1)
    assert notifier.topic(alert) == f"c/s1/alerts/{alert.id}"


def test_group_robots_get_markdown_and_everyone_else_the_contract_json(rig: Rig) -> None:
    from hub.alerts.notify import webhook_body

    rig.fault("trapped_passenger", True, detail="between_floors")
    [alert] = rig.engine.active.values()
    wecom = orjson.loads(webhook_body("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", alert))
    assert wecom["msgtype"] == "markdown" and "【紧急】困人" in wecom["markdown"]["content"]
    assert "between_floors" in wecom["markdown"]["content"]
    ding = orjson.loads(webhook_body("https://oapi.dingtalk.com/robot/send?access_token=t", alert))
    assert ding["markdown"]["title"] == "困人" and "e1" in ding["markdown"]["text"]
    plain = orjson.loads(webhook_body("https://ops.example/hook", alert))
    assert plain["id"] == alert.id and plain["severity"] == "critical"
