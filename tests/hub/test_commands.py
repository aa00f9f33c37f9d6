"""Command replies on a real Mosquitto and a running hub: only the commanded device can answer."""

from __future__ import annotations

import asyncio
import queue
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import paho.mqtt.client as paho
import pytest

from tests.support.hub_fixtures import HubRun
from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER, Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]


@contextmanager
def device_link(broker: Broker, cmd_filter: str) -> Iterator[tuple[paho.Client, queue.Queue[tuple[str, bytes]]]]:
    """A device connection that sees the commands on `cmd_filter` and can publish anywhere it may."""
    commands: queue.Queue[tuple[str, bytes]] = queue.Queue()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(DEVICE_USER, DEVICE_PASSWORD)
    client.on_message = lambda c, u, m: commands.put((m.topic, m.payload))
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.subscribe(cmd_filter, qos=1)
    try:
        yield client, commands
    finally:
        client.loop_stop()
        client.disconnect()


async def test_a_reply_from_another_device_with_the_command_id_does_not_answer_it(embedded_hub: HubRun) -> None:
    """g2 learns the id of g1's command (any subscriber to g1's cmd topic can) and answers first, falsely."""
    run = embedded_hub
    run.hub.commands.timeout_s = 1.5
    operator = {"Authorization": f"Bearer {run.hub.users.add('张调度', 'operator')}"}
    with device_link(run.broker, run.topic("gate", "+", "cmd")) as (client, commands):
        await asyncio.sleep(0.3)  # the subscription is in place

        async def answer(from_device: str, ok: bool) -> None:
            _topic, body = await asyncio.to_thread(commands.get, True, 5)
            reply = {"id": orjson.loads(body)["id"], "ok": ok, "error": None if ok else "spoofed"}
            client.publish(run.topic("gate", from_device, "reply"), orjson.dumps(reply), qos=1).wait_for_publish(5)

        url = f"/api/devices/{run.site}/gate/g1/commands"
        _, response = await asyncio.gather(answer("g2", False), run.api.post(url, json={"op": "open"},
                                                                                     headers=operator))
        assert response.status_code == 504, response.text  # g2's reply did not count as g1's
        assert run.hub.pipeline.stats.accepted[("gate", "reply")] == 1  # it was received and stored all the same

        _, response = await asyncio.gather(answer("g1", True), run.api.post(url, json={"op": "open"},
                                                                                    headers=operator))
        assert response.status_code == 200 and response.json()["ok"] is True, response.text
    trail = (await run.api.get("/api/audit", params={"action": "device.command"})).json()
    assert [a["outcome"] for a in trail] == ["ok", "refused 504"]


async def test_cutting_a_household_s_supply_needs_an_admin_and_every_attempt_is_audited(embedded_hub: HubRun) -> None:
    """A meter's valve and relay are admin commands: an operator gets 403 (audited, nothing sent); an admin's
    command reaches the meter and waits for its reply."""
    run = embedded_hub
    operator = {"Authorization": f"Bearer {run.hub.users.add('张调度', 'operator')}"}
    admin = {"Authorization": f"Bearer {run.hub.users.add('李经理', 'admin')}"}
    valve = f"/api/devices/{run.site}/meter/b1-m1/commands"
    relay = f"/api/devices/{run.site}/meter/b1-m2/commands"
    with device_link(run.broker, run.topic("meter", "+", "cmd")) as (client, commands):
        await asyncio.sleep(0.3)  # the subscription is in place
        for url, body in ((valve, {"op": "valve", "args": {"state": "closed"}}),
                          (relay, {"op": "relay", "args": {"state": "off"}})):
            refused = await run.api.post(url, json=body, headers=operator)
            assert refused.status_code == 403 and "needs the admin role" in refused.text, refused.text
        await asyncio.sleep(0.3)
        assert commands.empty(), "a refused command reached the meter"

        async def answer() -> str:
            topic, sent = await asyncio.to_thread(commands.get, True, 5)
            command = orjson.loads(sent)
            reply = {"id": command["id"], "ok": True}
            client.publish(topic.removesuffix("/cmd") + "/reply", orjson.dumps(reply), qos=1).wait_for_publish(5)
            return f"{command['op']} {command['args']['state']}"

        sent, response = await asyncio.gather(answer(), run.api.post(
            valve, json={"op": "valve", "args": {"state": "closed"}}, headers=admin))
        assert response.status_code == 200 and response.json()["ok"] is True, response.text
        assert sent == "valve closed"
    trail = (await run.api.get("/api/audit", params={"action": "device.command"}, headers=admin)).json()
    assert [(a["user"], a["outcome"], a["target"]) for a in trail] == [
        ("李经理", "ok", f"{run.site}/meter/b1-m1"), ("张调度", "refused 403", f"{run.site}/meter/b1-m2"),
        ("张调度", "refused 403", f"{run.site}/meter/b1-m1")]
