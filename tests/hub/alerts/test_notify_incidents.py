"""Incidents to webhooks: what a reader must hear of, once, and no personal event fields."""

from __future__ import annotations

import orjson
import pytest

from devices.access import FAULTS
from hub.alerts.models import acknowledge, open_alert
from hub.alerts.notify import Notifier, incident_body
from hub.incidents.merge import alert_part, event_part, place, with_alert

pytestmark = pytest.mark.unit

T0 = 1_800_000_000_000
HOOK = "http://hooks.example/in"
ROBOT = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"


async def _nothing(topic: str, payload: bytes, qos: int, retain: bool) -> None:
    return None


def test_incident_webhooks_post_changes_that_matter_without_plates() -> None:
    alert = open_alert("sunshine", "access", "door-3", "door_forced", FAULTS["door_forced"], None, T0)
    opened = place([], alert_part(alert, frozenset({"door-3"})), 60_000)
    assert opened is not None
    joined = place([opened], event_part("sunshine", "gate", "lane-2", "p1", T0 + 1, "passage",
                                        frozenset({"door-3"}), {"plate": "琼A12345"}), 60_000)
    assert joined is not None
    acked = with_alert(joined, acknowledge(alert, "王保安", None, T0 + 2))
    notifier = Notifier("smarthub", _nothing, [HOOK], incident_webhooks=[HOOK, ROBOT])
    for version in (opened, joined, acked):
        notifier.incident(version)
    queue = notifier._hooks[HOOK]
    bodies = [orjson.loads(queue.get_nowait()) for _ in range(queue.qsize())]
    assert Notifier("smarthub", _nothing, [HOOK])._incidents == {}  # alert hooks hear no incidents
    assert [b["state"] for b in bodies] == ["open", "acknowledged"]  # the passage joining was not news
    assert bodies[1]["type"] == "incident" and "琼A12345" not in orjson.dumps(bodies[1]).decode()
    assert bodies[1]["events"] == ["p1"]
    robot = orjson.loads(incident_body(ROBOT, acked))["markdown"]["content"]
    assert "强行开门" in robot and "已确认" in robot and "王保安" in robot
