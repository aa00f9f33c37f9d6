"""A trapped passenger, end to end: Mosquitto -> hub -> API, retained MQTT alert, webhooks; ack, resolve, restart."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from hub.alerts import notify
from tests.support.hub_fixtures import eventually, running_hub
from tests.support.mqtt_fixtures import Broker, read_retained

pytestmark = [pytest.mark.integration, pytest.mark.services]


class Hook:
    """A local webhook endpoint recording what it receives (or failing on purpose)."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict] = []  # type: ignore[type-arg]
        self.attempts = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                hook.attempts += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if status < 300:
                    hook.bodies.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Hook, Hook]]:
    monkeypatch.setattr(notify, "WEBHOOK_BACKOFF_S", (0.01, 0.01, 0.01, 0.01))
    good, bad = Hook(), Hook(status=500)
    yield good, bad
    good.close()
    bad.close()


async def test_trapped_passenger_alert_end_to_end(settings_for, mosquitto: Broker, hooks) -> None:  # type: ignore[no-untyped-def]
    good, bad = hooks
    settings = settings_for("embedded", webhooks=f"{good.url},{bad.url}")
    async with running_hub(settings, mosquitto) as run:
        topic = run.topic("elevator", "b3-el1", "event")
        await run.publish(topic, {"type": "fault", "code": "trapped_passenger", "active": True,
                                  "detail": "between_floors", "id": "f1"})
        [alert] = await eventually(lambda: _alerts(run, state="open"), timeout=5, what="the alert on the API")
        assert (alert["severity"], alert["code"], alert["device"], alert["title"]) == (
            "critical", "trapped_passenger", "b3-el1", "困人")
        alert_topic = f"{run.root}/{run.site}/alerts/{alert['id']}"
        on_mqtt = await asyncio.to_thread(read_retained, run.broker, f"{run.root}/+/alerts/#")
        assert orjson.loads(on_mqtt[alert_topic])["state"] == "open"
        await eventually(lambda: good.bodies, what="the webhook")
        assert good.bodies[0]["id"] == alert["id"] and good.bodies[0]["state"] == "open"

        response = await run.api.post(f"/api/alerts/{alert['id']}/ack", json={"note": "到场"})
        assert response.status_code == 200 and response.json()["acknowledged_by"] == "admin"
        assert (await run.api.post(f"/api/alerts/{alert['id']}/ack", json={"by": "x"})).status_code == 409
        assert (await run.api.post("/api/alerts/nope/ack", json={"by": "x"})).status_code == 404
        assert (await run.api.post(f"/api/alerts/{alert['id']}/ack", json={"by": 5})).status_code == 422
        await eventually(lambda: [b["state"] for b in good.bodies] == ["open", "acknowledged"], what="ack hook")

        await run.publish(topic, {"type": "fault", "code": "trapped_passenger", "active": False, "id": "f2"})
        await eventually(lambda: _alerts(run, state="resolved"), what="the device to clear it")
        await eventually(lambda: [b["state"] for b in good.bodies][-1] == "resolved", what="resolve hook")
        on_mqtt = await asyncio.to_thread(read_retained, run.broker, f"{run.root}/+/alerts/#")
        assert alert_topic not in on_mqtt  # the empty retained message cleared it
        report = (await run.api.get("/api/reliability", params={"kind": "elevator", "days": 1})).json()
        [row] = report["devices"]
        assert (row["device"], row["failures"]) == ("b3-el1", 1) and 0 < row["availability"] < 1
        assert row["mttr_s"] is not None and report["sites"][run.site]["devices"] == 1
        await eventually(lambda: run.hub.notifier.failures[bad.url] == 3, what="the failing hook to give up 3 times")
        assert bad.attempts == 3 * notify.WEBHOOK_ATTEMPTS
        metrics = (await run.api.get("/metrics")).text
        assert f'smarthub_webhook_deliveries_total{{outcome="failed",url="{bad.url}"}} 3.0' in metrics
        assert f'smarthub_webhook_deliveries_total{{outcome="ok",url="{good.url}"}} 3.0' in metrics

    async with running_hub(settings, mosquitto) as run:  # nothing lost across a restart
        [again] = await _alerts(run)
        assert again["id"] == alert["id"] and again["state"] == "resolved"
        assert [n["action"] for n in again["notes"]] == ["opened", "acknowledged", "resolved"]


async def _alerts(run, **params) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    response = await run.api.get("/api/alerts", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_work_order_worked_through_the_api(settings_for, mosquitto: Broker) -> None:  # type: ignore[no-untyped-def]
    async with running_hub(settings_for("embedded"), mosquitto) as run:
        await run.publish(run.topic("elevator", "b5-el2", "event"),
                          {"type": "fault", "code": "trapped_passenger", "active": True, "id": "t9"})
        [order] = await eventually(lambda: _get(run, "/api/orders"), what="the automatic work order")
        assert order["team"] == "elevator-maintenance" and order["arrive_due"] is not None
        for action, body in [("dispatch", {"by": "调度员", "assignee": "王师傅"}), ("arrive", {"by": "王师傅"}),
                             ("resolve", {"by": "王师傅", "note": "已救出"})]:
            response = await run.api.post(f"/api/orders/{order['id']}/{action}", json=body)
            assert response.status_code == 200, response.text
        assert response.json()["state"] == "resolved" and response.json()["assignee"] == "王师傅"
        assert [n["by"] for n in response.json()["notes"]] == ["hub", "admin", "admin", "admin"]  # the token's user
        assert (await run.api.post(f"/api/orders/{order['id']}/arrive", json={"by": "x"})).status_code == 409
        assert (await run.api.post("/api/orders/nope/arrive", json={"by": "x"})).status_code == 404
        [alert] = await _get(run, "/api/alerts")
        assert alert["state"] == "resolved" and alert["resolved_by"] == "admin"
        report = await _get(run, "/api/orders/report")
        assert report["teams"]["elevator-maintenance"]["orders"] == 1


async def _get(run, path: str):  # type: ignore[no-untyped-def]
    response = await run.api.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def test_who_acted_is_the_authenticated_user_never_a_name_in_the_body(  # type: ignore[no-untyped-def]
        settings_for, mosquitto: Broker) -> None:
    """An attacker with a maintenance token claims to be an operator; the record names the token's user."""
    async with running_hub(settings_for("embedded"), mosquitto) as run:
        wang = {"Authorization": f"Bearer {run.hub.users.add('wang.mt', 'maintenance')}"}
        zhang = {"Authorization": f"Bearer {run.hub.users.add('zhang.op', 'operator')}"}
        await run.publish(run.topic("elevator", "b2-el1", "event"),
                          {"type": "fault", "code": "door_lock_fault", "active": True, "id": "d1"})
        [alert] = await eventually(lambda: _alerts(run, state="open"), what="the alert")
        acked = await run.api.post(f"/api/alerts/{alert['id']}/ack", headers=wang,
                                   json={"by": "zhang.op (operator)", "note": "on my way"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["acknowledged_by"] == "wang.mt"
        assert [(n["by"], n["text"]) for n in acked.json()["notes"]][-1] == ("wang.mt", "on my way")

        made = await run.api.post(f"/api/alerts/{alert['id']}/order", headers=wang, json={"by": "zhang.op"})
        assert made.status_code == 200 and made.json()["notes"][0]["by"] == "wang.mt"
        order = made.json()["id"]
        sent = await run.api.post(f"/api/orders/{order}/dispatch", headers=zhang, json={"by": "boss", "assignee": "li"})
        assert sent.json()["assignee"] == "li" and sent.json()["notes"][-1]["by"] == "zhang.op"
        taken = await run.api.post(f"/api/orders/{order}/arrive", headers=wang, json={"by": "zhang.op"})
        assert taken.json()["notes"][-1]["by"] == "wang.mt"
        done = await run.api.post(f"/api/orders/{order}/resolve", headers=wang, json={"by": "zhang.op", "note": "ok"})
        assert done.json()["notes"][-1]["by"] == "wang.mt"
        [closed] = await _alerts(run, state="resolved")
        assert closed["resolved_by"] == "wang.mt"
        assert [n["by"] for n in closed["notes"]] == ["device", "wang.mt", "wang.mt"]  # opened, acknowledged, resolved
        own = await run.api.post("/api/orders/none/dispatch", headers=wang, json={})  # assignee defaults to the caller
        assert own.status_code == 404

        trail = (await run.api.get("/api/audit")).json()
        ack = next(a for a in trail if a["action"] == "alert.ack")
        assert ack["user"] == "wang.mt" and ack["detail"]["by"] == "zhang.op (operator)"  # the claim, kept as sent
