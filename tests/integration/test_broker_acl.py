"""The shipped mosquitto.conf with files from `smarthub broker-files`, on a real Mosquitto."""

from __future__ import annotations

import os
import queue
import re
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from hub.credentials import Credentials, broker_files
from tests.support.processes import Service, free_port, port_open, require_binary, wait_until

pytestmark = pytest.mark.services
ROOT_DIR = Path(__file__).resolve().parents[2]


def shipped_config(tmp: Path, port: int) -> str:
    """The repository's mosquitto.conf with its paths and port moved into a test directory."""
    text = (ROOT_DIR / "mosquitto.conf").read_text()
    text = text.replace("/mosquitto/config/", f"{tmp}/").replace("/mosquitto/data/", f"{tmp}/data/")
    text = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", text, flags=re.M)
    return text + ("user root\n" if os.geteuid() == 0 else "")


class Client:
    def __init__(self, port: int, user: str | None, password: str | None) -> None:
        self.got: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[int] = queue.Queue()
        self.granted: queue.Queue[list[int]] = queue.Queue()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2)
        if user:
            self.c.username_pw_set(user, password)
        self.c.on_connect = lambda c, u, f, rc, p=None: self.connack.put(rc.value)
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
    creds = Credentials(tmp_path / "credentials.json")
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
