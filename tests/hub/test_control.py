"""A kind's controller run by a real hub on a real Mosquitto: orderly charging of MQTT chargers sharing a cap.

The chargers are MQTT clients that publish telemetry and session events, answer each `set_limit` on their
command topic, and (all but one) draw what they are allowed; the one that does not must raise the alert."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest

from hub.config import Settings
from tests.support.hub_fixtures import HubRun, eventually, running_hub
from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER, Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]

CAP_KW = 20.0
BASE_KW = 5.0  # measured at the transformer's meter
HEADROOM_KW = CAP_KW - BASE_KW
CHARGERS = ("c1", "c2", "c3")
REGISTRY = f"""
[sites.sunshine]
name = "阳光花园"
power_cap_kw = {CAP_KW}
base_load_kw = 1.0

[[devices]]
site = "sunshine"
kind = "meter"
device = "tx-1"
role = "transformer"
""" + "".join(f"""
[[devices]]
site = "sunshine"
kind = "charger"
device = "{c}"
max_current_a = 32
""" for c in CHARGERS)


class Chargers:
    """The piles' side: answers every set_limit, keeps each pile's limit and the sum after every command."""

    def __init__(self, run: HubRun) -> None:
        self.run = run
        self.limits: dict[str, float] = {}
        self.sums: list[float] = []
        self.lock = threading.Lock()

    def on_command(self, client: paho.Client, topic: str, body: bytes) -> None:
        command = orjson.loads(body)
        device = topic.split("/")[-2]
        if command["op"] == "set_limit":
            with self.lock:
                self.limits[device] = command["args"]["limit_kw"]
                self.sums.append(sum(self.limits.values()))
        reply = {"id": command["id"], "ok": True}
        client.publish(topic.removesuffix("/cmd") + "/reply", orjson.dumps(reply), qos=1)


@contextmanager
def charger_link(broker: Broker, run: HubRun, piles: Chargers) -> Iterator[paho.Client]:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"piles-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(DEVICE_USER, DEVICE_PASSWORD)
    client.on_message = lambda c, u, m: piles.on_command(c, m.topic, m.payload)
    client.connect(broker.host, broker.port)
    client.loop_start()
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    client.subscribe(run.topic("charger", "+", "cmd"), qos=1)
    assert subscribed.wait(5), "the piles could not subscribe to their commands"
    try:
        yield client
    finally:
        client.loop_stop()
        client.disconnect()


async def test_mqtt_chargers_share_the_headroom_and_one_not_obeying_raises_the_over_cap_alert(
    settings_for: Callable[..., Settings], mosquitto: Broker, tmp_path: Path
) -> None:
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY, encoding="utf-8")
    settings = settings_for("embedded", registry=registry, charging_period_s=1.0, charging_debounce_s=0.2,
                            charging_over_cap_s=1.5)
    async with running_hub(settings, mosquitto) as run:
        piles = Chargers(run)
        with charger_link(mosquitto, run, piles):
            await eventually(lambda: run.hub.mqtt.connected, what="the hub on MQTT")
            await run.publish_many(
                [(run.topic("meter", "tx-1", "telemetry"), {"utility": "electricity", "power_kw": BASE_KW})]
                + [(run.topic("charger", c, "event"), {"type": "session_start", "id": f"s-{c}", "session": f"S-{c}",
                                                         "connector": 1, "id_tag": f"tag-{c}",
                                                         "meter_start_kwh": 100.0}) for c in CHARGERS]
                + [(run.topic("charger", c, "telemetry"), {"status": "charging", "power_kw": 1.0,
                                                             "energy_kwh": 101.5, "soc_pct": 40})
                   for c in CHARGERS])

            def settled() -> bool:  # every pile at its fair share of what is left after the ramp
                with piles.lock:
                    return len(piles.limits) == 3 and all(v == HEADROOM_KW / 3 for v in piles.limits.values())

            await eventually(settled, timeout=15, what="each pile at a third of the headroom")
            assert max(piles.sums) <= HEADROOM_KW + 1e-9, piles.sums  # never above it, not even while ramping

            response = await run.api.get("/api/charging/sunshine")
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["capacity_kw"], body["base_load_kw"], body["base_load_measured"]) == (CAP_KW, BASE_KW, True)
            assert body["headroom_kw"] == HEADROOM_KW
            assert [(c["device"], c["state"], c["limit_kw"], c["sent_kw"]) for c in body["connectors"]] == [
                (c, "admitted", 5.0, 5.0) for c in CHARGERS]
            assert {c["reason"]["code"] for c in body["connectors"]} == {"fair_share"}
            assert body["connectors"][0]["reason"]["zh"] and body["connectors"][0]["soc_pct"] == 40
            assert body["connectors"][0]["session_kwh"] == 1.5
            assert "tag-c1" not in response.text and "id_tag" not in response.text  # no personal data
            assert (await run.api.get("/api/charging/nowhere")).status_code == 404
            refused = await run.api.get("/api/charging/sunshine", headers={"Authorization": "Bearer nope"})
            assert refused.status_code == 401

            audit = run.hub.audit.recent(action="control.command")
            assert audit and {a["user"] for a in audit} == {"hub"}  # the hub's own action, audited
            assert not any(a.key[3] == "charging_over_cap" for a in run.hub.alerts.active.values())

            # c1 ignores its 5 kW and draws 12; the others obey: 12 + 5 + 5 > 15 for longer than 1.5 s.
            await run.publish_many([(run.topic("charger", "c1", "telemetry"), {"status": "charging", "power_kw": 12.0}),
                                    (run.topic("charger", "c2", "telemetry"), {"status": "charging", "power_kw": 5.0}),
                                    (run.topic("charger", "c3", "telemetry"), {"status": "charging", "power_kw": 5.0})])
            alert = await eventually(
                lambda: [a for a in run.hub.alerts.active.values() if a.code == "charging_over_cap"], timeout=10,
                what="the over-cap alert")
            assert (alert[0].site, alert[0].kind, alert[0].device) == ("sunshine", "charger", "c1")
            assert "headroom 15.0 kW" in (alert[0].detail or "")

            # c1 obeys again: the alert resolves.
            await run.publish(run.topic("charger", "c1", "telemetry"), {"status": "charging", "power_kw": 5.0})
            await eventually(lambda: not [a for a in run.hub.alerts.active.values() if a.code == "charging_over_cap"],
                             timeout=10, what="the over-cap alert to resolve")

            # c3 drops off the link (it may still charge at its 5 kW): its limit stays kept out of the headroom,
            # nothing is given away; back, it is sent its limit anew, and the sum still never passes the headroom.
            c3_sent = sum(1 for _ in piles.sums)
            await run.publish(run.topic("charger", "c3", "state"), {"online": False})
            kept = await eventually(lambda: _reserved(run), timeout=10, what="c3's 5 kW kept")
            assert kept == 5.0 and piles.limits == {"c1": 5.0, "c2": 5.0, "c3": 5.0}
            await run.publish(run.topic("charger", "c3", "state"), {"online": True})
            await eventually(lambda: len(piles.sums) > c3_sent and settled(), timeout=15, what="c3 steered again")
            assert max(piles.sums) <= HEADROOM_KW + 1e-9, piles.sums


def _reserved(run: HubRun) -> float | None:
    """What the allocator keeps for offline chargers at sunshine now (None: nothing)."""
    answer = run.hub.controllers[0][1].answer("sunshine")  # type: ignore[attr-defined]
    return answer.reserved_kw if answer is not None and answer.reserved_kw else None

async def test_a_car_with_no_room_is_paused_at_zero_and_raises_the_paused_alert(
    settings_for: Callable[..., Settings], mosquitto: Broker, tmp_path: Path
) -> None:
    """1 kW is below one car's 6 A minimum (1.32 kW): the car waits at 0, never at 3 A, and once past the
    starvation bound (2 s here) the alert says so. A site with a capacity but no chargers answers too."""
    registry = tmp_path / "registry.toml"
    registry.write_text('[sites.sunshine]\npower_cap_kw = 1.0\n\n[sites.moon]\ntransformer_kva = 50\n\n'
                        '[sites.plain]\nname = "no cap"\n\n'
                        '[[devices]]\nsite = "sunshine"\nkind = "charger"\ndevice = "c1"\n', encoding="utf-8")
    settings = settings_for("embedded", registry=registry, charging_period_s=0.5, charging_debounce_s=0.1,
                            charging_starve_after_s=2.0)
    async with running_hub(settings, mosquitto) as run:
        piles = Chargers(run)
        with charger_link(mosquitto, run, piles):
            await run.publish(run.topic("charger", "c1", "telemetry"), {"status": "charging", "power_kw": 0.0})
            await eventually(lambda: piles.limits.get("c1") == 0.0, what="c1 paused at 0")
            body = (await run.api.get("/api/charging/sunshine")).json()
            assert [(c["state"], c["reason"]["code"]) for c in body["connectors"]] == [("paused", "no_headroom")]
            alert = await eventually(
                lambda: [a for a in run.hub.alerts.active.values() if a.code == "charging_paused_long"], timeout=10,
                what="the paused alert")
            assert (alert[0].site, alert[0].device) == ("sunshine", "c1")

            # c1's car leaves: nothing waits any more, the alert resolves.
            await run.publish(run.topic("charger", "c1", "telemetry"), {"status": "available", "power_kw": 0.0})
            await eventually(lambda: not [a for a in run.hub.alerts.active.values()
                                          if a.code == "charging_paused_long"], timeout=10, what="the alert resolved")

        moon = await run.api.get("/api/charging/moon")  # 50 kVA x 0.9 x (1 - 10 %), no chargers
        assert moon.status_code == 200 and (moon.json()["capacity_kw"], moon.json()["connectors"]) == (40.5, [])
        assert (await run.api.get("/api/charging/plain")).status_code == 404


async def test_a_charger_that_never_answers_holds_up_only_its_own_site(
    settings_for: Callable[..., Settings], mosquitto: Broker, tmp_path: Path
) -> None:
    """Each site's round is its own task: m1 at `aaa` (first in order) is never answered, so its round waits the
    10 s command timeout; `sunshine`'s charger is steered meanwhile, within a few seconds."""
    registry = tmp_path / "registry.toml"
    registry.write_text('[sites.aaa]\npower_cap_kw = 10.0\n\n[sites.sunshine]\npower_cap_kw = 10.0\n\n'
                        '[[devices]]\nsite = "aaa"\nkind = "charger"\ndevice = "m1"\n\n'
                        '[[devices]]\nsite = "sunshine"\nkind = "charger"\ndevice = "c1"\n', encoding="utf-8")
    settings = settings_for("embedded", registry=registry, charging_period_s=0.5, charging_debounce_s=0.1)
    async with running_hub(settings, mosquitto) as run:
        piles = Chargers(run)  # answers sunshine's chargers only: nothing listens at aaa
        with charger_link(mosquitto, run, piles):
            await run.publish(run.topic("charger", "m1", "telemetry", site="aaa"), {"status": "charging",
                                                                                    "power_kw": 0.0})
            await eventually(lambda: ("aaa", "charger", "m1") in run.hub.live.devices, what="m1 heard")
            await asyncio.sleep(1.0)  # m1's set_limit is out, unanswered
            await run.publish(run.topic("charger", "c1", "telemetry"), {"status": "charging", "power_kw": 0.0})
            started = time.monotonic()
            await eventually(lambda: "c1" in piles.limits, timeout=15, what="c1 steered")
            assert time.monotonic() - started < 5.0, "sunshine's round waited for aaa's silent charger"


async def test_a_residents_plan_reaches_the_allocator_is_shown_and_ends_with_its_session(
    settings_for: Callable[..., Settings], mosquitto: Broker, tmp_path: Path
) -> None:
    """Two cars share 10 kW alike; c2's resident says it may wait for the off-peak hours (none now): c1 is
    filled first. The plan is an operator's audited action, shown without the id_tag, and goes with c2's session."""
    registry = tmp_path / "registry.toml"
    registry.write_text('[sites.sunshine]\npower_cap_kw = 10.0\n' + "".join(
        f'\n[[devices]]\nsite = "sunshine"\nkind = "charger"\ndevice = "{c}"\nmax_current_a = 32\n'
        for c in ("c1", "c2")), encoding="utf-8")
    settings = settings_for("embedded", registry=registry, charging_period_s=1.0, charging_debounce_s=0.1)
    async with running_hub(settings, mosquitto) as run:
        piles = Chargers(run)
        with charger_link(mosquitto, run, piles):
            await eventually(lambda: run.hub.mqtt.connected, what="the hub on MQTT")
            plan = {"energy_kwh": 30.0, "departure": 4_102_444_800_000, "deferrable": True}
            await run.publish(run.topic("charger", "c2", "telemetry"), {"status": "available", "power_kw": 0.0})
            await eventually(lambda: ("sunshine", "c2") in run.hub.controllers[0][1].seen,  # type: ignore[attr-defined]
                             what="c2 heard")
            early = await run.api.put("/api/charging/sunshine/c2/plan", json=plan)
            assert early.status_code == 409, early.text  # no session open: no car to plan for
            await run.publish_many(
                [(run.topic("charger", c, "event"), {"type": "session_start", "id": f"s-{c}", "session": f"S-{c}",
                                                       "connector": 1, "id_tag": f"tag-{c}",
                                                       "meter_start_kwh": 100.0}) for c in ("c1", "c2")]
                + [(run.topic("charger", c, "telemetry"), {"status": "charging", "power_kw": 1.0, "energy_kwh": 102.0})
                   for c in ("c1", "c2")])
            await eventually(lambda: piles.limits == {"c1": 5.0, "c2": 5.0}, timeout=15, what="5 kW each")

            viewer = run.hub.users.add("v-plan", "viewer")
            denied = await run.api.put("/api/charging/sunshine/c2/plan", json=plan,
                                       headers={"Authorization": f"Bearer {viewer}"})
            assert denied.status_code == 403
            assert (await run.api.put("/api/charging/sunshine/nope/plan", json=plan)).status_code == 404
            assert (await run.api.put("/api/charging/sunshine/c2/plan", json={"energy_kwh": -1})).status_code == 422
            response = await run.api.put("/api/charging/sunshine/c2/plan", json=plan)
            assert response.status_code == 200, response.text
            assert response.json() == {"session": "S-c2", "energy_kwh": 30.0, "remaining_kwh": 28.0,
                                       "departure": plan["departure"], "deferrable": True}
            await eventually(lambda: piles.limits == {"c1": 7.0, "c2": 3.0},
                             timeout=15, what="c1 (not deferrable) filled first")
            body = (await run.api.get("/api/charging/sunshine")).json()
            shown = {c["device"]: c["plan"] for c in body["connectors"]}
            assert shown["c1"] is None and shown["c2"]["remaining_kwh"] == 28.0
            assert "tag-c2" not in str(body) and "id_tag" not in str(body)
            audit = run.hub.audit.recent(action="charging.plan")
            [entry] = [a for a in audit if a["outcome"] == "ok"]
            assert (entry["target"], entry["user"], entry["detail"]["deferrable"]) == (
                "sunshine/charger/c2", "admin", True)
            assert {a["outcome"] for a in audit} == {"ok", "refused 409", "refused 404"}

            await run.publish(run.topic("charger", "c2", "event"), {
                "type": "session_stop", "id": "e-c2", "session": "S-c2", "energy_kwh": 2.0, "duration_s": 60,
                "reason": "local"})

            async def plan_gone() -> bool:
                rows = (await run.api.get("/api/charging/sunshine")).json()["connectors"]
                return all(c["plan"] is None for c in rows)

            await eventually(plan_gone, timeout=10, what="c2's plan gone with its session")
