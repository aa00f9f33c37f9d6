"""The shipped mosquitto.conf with files from `smarthub broker-files`, on a real Mosquitto."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from hub.config import Settings
from hub.credentials import Credentials, broker_files
from tests.support.hub_fixtures import ADMIN_TOKEN, eventually, running_hub
from tests.support.processes import Service, free_port, port_open, require_binary, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.services]
ROOT_DIR = Path(__file__).resolve().parents[2]


def shipped_config(tmp: Path, port: int) -> str:
    """The repository's mosquitto.conf with its paths and port moved into a test directory."""
    text = (ROOT_DIR / "mosquitto.conf").read_text()
    text = text.replace("/mosquitto/config/", f"{tmp}/").replace("/mosquitto/data/", f"{tmp}/data/")
    text = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", text, flags=re.M)
    return text + ("user root\n" if os.geteuid() == 0 else "")


class Client:
    def __init__(self, port: int, user: str | None, password: str | None, client_id: str = "",
                 clean: bool = True) -> None:
        self.got: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[int] = queue.Queue()
        self.granted: queue.Queue[list[int]] = queue.Queue()
        self.drops = 0
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
        if user:
            self.c.username_pw_set(user, password)
        self.c.on_connect = lambda c, u, f, rc, p=None: self.connack.put(rc.value)
        self.c.on_disconnect = lambda c, u, f, rc, p=None: setattr(self, "drops", self.drops + 1)
        self.c.on_message = lambda c, u, m: self.got.put((m.topic, m.payload))
        self.c.on_subscribe = lambda c, u, mid, rcs, p=None: self.granted.put([r.value for r in rcs])
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def sub(self, topic: str) -> list[int]:
        self.c.subscribe(topic, qos=1)
        return self.granted.get(timeout=5)

    def pub(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def stop(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    binary = require_binary("mosquitto", "mosquitto")
    creds = Credentials(tmp_path / "hub-data")
    passwords = {d: creds.add("sunshine", "gate", d) for d in ("east-1", "west-2")}
    passwd, acl = broker_files(creds.devices, "community", "mqtt://hub:hub-secret@127.0.0.1:1883")
    (tmp_path / "passwd").write_text(passwd)
    (tmp_path / "acl").write_text(acl)
    (tmp_path / "data").mkdir()
    port = free_port()
    (tmp_path / "mosquitto.conf").write_text(shipped_config(tmp_path, port))
    service = Service([binary, "-c", str(tmp_path / "mosquitto.conf")], tmp_path / "mosquitto.log")
    wait_until(lambda: port_open(port) or not service.alive(), what="mosquitto with the shipped config")
    assert service.alive(), service.log()
    yield port, passwords
    service.stop()


def test_anonymous_and_wrong_passwords_are_refused(broker) -> None:  # type: ignore[no-untyped-def]
    port, passwords = broker
    assert Client(port, None, None).connack.get(timeout=5) == 135  # not authorised
    assert Client(port, "sunshine.gate.east-1", "guess").connack.get(timeout=5) == 135
    good = Client(port, "sunshine.gate.east-1", passwords["east-1"])
    assert good.connack.get(timeout=5) == 0  # our $7$ hashes are what Mosquitto expects
    good.stop()


def test_a_device_touches_only_its_own_topics(broker) -> None:  # type: ignore[no-untyped-def]
    port, passwords = broker
    hub = Client(port, "hub", "hub-secret")
    east = Client(port, "sunshine.gate.east-1", passwords["east-1"])
    assert hub.connack.get(timeout=5) == 0 and east.connack.get(timeout=5) == 0
    assert hub.sub("community/#") == [1]
    east.pub("community/sunshine/gate/east-1/telemetry", b'{"barrier":"closed"}')
    east.pub("community/sunshine/gate/west-2/telemetry", b'{"barrier":"open"}')  # as another device
    east.pub("community/sunshine/gate/east-1/cmd", b'{"id":"x","op":"open"}')  # commands are the hub's
    time.sleep(0.5)
    received = []
    while not hub.got.empty():
        received.append(hub.got.get()[0])
    assert received == ["community/sunshine/gate/east-1/telemetry"]

    # Mosquitto grants these subscriptions but its ACL filters what is delivered, checked below.
    assert east.sub("community/sunshine/gate/west-2/cmd") == [1]
    assert east.sub("community/#") == [1]
    assert east.sub("community/sunshine/gate/east-1/cmd") == [1]
    hub.pub("community/sunshine/gate/west-2/cmd", b'{"id":"1","op":"open"}')
    hub.pub("community/sunshine/gate/east-1/cmd", b'{"id":"2","op":"open"}')
    assert east.got.get(timeout=5) == ("community/sunshine/gate/east-1/cmd", b'{"id":"2","op":"open"}')
    time.sleep(0.3)
    assert east.got.empty()
    hub.stop()
    east.stop()


HUB_URL_LOGIN = "hub:hub-secret"  # the hub account the broker fixture writes
SITE_GATE = "community/sunshine/gate"


def hub_on(port: int, data_dir: Path) -> Settings:
    """A hub as deployed: logged in as `hub`, SMARTHUB_MQTT_CLIENT_ID unset (so derived from the login)."""
    return Settings(mqtt_url=f"mqtt://{HUB_URL_LOGIN}@127.0.0.1:{port}", root="community", data_dir=data_dir,
                    admin_token=ADMIN_TOKEN)


def barrier(n: int) -> bytes:
    return b'{"type": "barrier", "state": "open", "id": "b%d"}' % n


async def test_a_device_cannot_take_over_the_hubs_session(broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Without use_username_as_clientid in mosquitto.conf, each of these connects kicks the hub off
    # (checked: the hub then counts more connects and losses, and misses messages).
    port, passwords = broker
    settings = hub_on(port, tmp_path / "hub")
    assert settings.mqtt_client_id == "hub"
    async with running_hub(settings, None) as run:  # type: ignore[arg-type]  # devices publish with their logins
        link = run.hub.mqtt
        # One at a time: two connections of one login share its client id, so they would kick each other.
        for n, client_id in enumerate(("hub", "smarthub")):  # the hub's username, and the old fixed client id
            intruder = Client(port, "sunshine.gate.east-1", passwords["east-1"], client_id=client_id, clean=False)
            assert intruder.connack.get(timeout=5) == 0
            await asyncio.sleep(0.5)  # a takeover shows here: the hub's link lost, and it reconnecting
            assert (link.connected, link.connects, link.losses) == (True, 1, 0), client_id
            intruder.pub(f"{SITE_GATE}/east-1/event", barrier(n))  # after the device connected
            await eventually(lambda n=n: sum(run.hub.pipeline.stats.accepted.values()) == n + 1,
                             what=f"event {n} at the hub")
            assert (link.connects, link.losses, intruder.drops) == (1, 0, 0), client_id
            intruder.stop()

def test_a_device_cannot_kick_another_off(broker) -> None:  # type: ignore[no-untyped-def]
    port, passwords = broker
    hub = Client(port, "hub", "hub-secret")
    west = Client(port, "sunshine.gate.west-2", passwords["west-2"], client_id="west-2")
    assert hub.connack.get(timeout=5) == 0 and west.connack.get(timeout=5) == 0
    assert west.sub(f"{SITE_GATE}/west-2/cmd") == [1]
    # east-1 reuses west-2's chosen client id, then its username (what the broker made its client id).
    for client_id in ("west-2", "sunshine.gate.west-2"):
        east = Client(port, "sunshine.gate.east-1", passwords["east-1"], client_id=client_id)
        assert east.connack.get(timeout=5) == 0
        time.sleep(0.5)
        hub.pub(f"{SITE_GATE}/west-2/cmd", client_id.encode())
        assert west.got.get(timeout=5) == (f"{SITE_GATE}/west-2/cmd", client_id.encode())
        assert west.drops == 0 and west.connack.empty(), client_id  # never dropped, never had to reconnect
        east.stop()
    hub.stop()
    west.stop()


async def test_the_hubs_session_outlives_a_restart_under_its_login(broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port, passwords = broker
    settings = hub_on(port, tmp_path / "hub")
    async with running_hub(settings, None):  # type: ignore[arg-type]
        pass  # subscribed in a persistent session, then stopped
    east = Client(port, "sunshine.gate.east-1", passwords["east-1"])
    assert east.connack.get(timeout=5) == 0
    east.pub(f"{SITE_GATE}/east-1/event", barrier(7))  # QoS 1 while the hub is away: the broker queues it
    east.stop()
    async with running_hub(hub_on(port, tmp_path / "hub"), None) as run:  # type: ignore[arg-type]
        await eventually(lambda: sum(run.hub.pipeline.stats.accepted.values()) == 1, what="the queued event")
        await run.stored()
        events = await run.events(device="east-1")
        assert [e["id"] for e in events] == ["b7"], events


@pytest.mark.parametrize("with_reads", [True, False])
def test_the_hub_reads_its_adapters_vendor_topics_and_devices_cannot_forge_them(
        tmp_path: Path, with_reads: bool) -> None:
    """`broker-files` with the adapters' filters lets the hub's account read Frigate's topics (written by the
    Frigate account the same files give, which may write `frigate/#` and nothing else); without them Mosquitto
    grants the subscription and delivers nothing, which is why the files must be written again after adding
    an adapter."""
    from hub.adapters import broker_accounts, load, mqtt_filters

    binary = require_binary("mosquitto", "mosquitto")
    creds = Credentials(tmp_path / "hub-data")
    gate_password = creds.add("sunshine", "gate", "east-1")
    frigate_password = creds.add_vendor("frigate")
    adapters = load(["adapters.frigate"])
    reads = mqtt_filters(adapters) if with_reads else []
    vendors = {login: (creds.vendors[login], writes) for login, writes in broker_accounts(adapters).items()}
    passwd, acl = broker_files(creds.devices, "community", "mqtt://hub:hub-secret@127.0.0.1:1883", reads, vendors)
    (tmp_path / "passwd").write_text(passwd)
    (tmp_path / "acl").write_text(acl)
    (tmp_path / "data").mkdir()
    port = free_port()
    (tmp_path / "mosquitto.conf").write_text(shipped_config(tmp_path, port))
    service = Service([binary, "-c", str(tmp_path / "mosquitto.conf")], tmp_path / "mosquitto.log")
    try:
        wait_until(lambda: port_open(port) or not service.alive(), what="mosquitto with the shipped config")
        hub = Client(port, "hub", "hub-secret")
        nvr = Client(port, "frigate", frigate_password)
        gate = Client(port, "sunshine.gate.east-1", gate_password)
        assert [c.connack.get(timeout=5) for c in (hub, nvr, gate)] == [0, 0, 0]
        assert hub.sub("frigate/events") == [1]
        gate.pub("frigate/events", b'{"forged": true}')
        nvr.pub("frigate/events", b'{"type": "new"}')
        time.sleep(0.5)
        received = []
        while not hub.got.empty():
            received.append(hub.got.get())
        assert received == ([("frigate/events", b'{"type": "new"}')] if with_reads else [])
        # Frigate publishes under its prefix only: it reads nothing, and forges no contract message.
        assert hub.sub("community/#") == [1]
        nvr.sub("frigate/#")
        nvr.sub("community/#")
        nvr.pub("community/sunshine/gate/east-1/event", b'{"forged": true}')
        gate.pub("community/sunshine/gate/east-1/event", b'{"real": true}')
        nvr.pub("frigate/events", b'{"type": "end"}')
        time.sleep(0.5)
        heard = []
        while not hub.got.empty():
            heard.append(hub.got.get())
        assert heard == [("community/sunshine/gate/east-1/event", b'{"real": true}')] + (
            [("frigate/events", b'{"type": "end"}')] if with_reads else [])
        assert nvr.got.empty(), "the Frigate account read something"
        for c in (hub, nvr, gate):
            c.stop()
    finally:
        service.stop()
