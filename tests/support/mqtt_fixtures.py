"""A real Mosquitto for tests: free loopback port, no anonymous access, a password file."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from tests.support.processes import Service, free_service_port, port_open, require_binary, wait_until

HUB_USER, HUB_PASSWORD = "hub", "hub-test-password"
DEVICE_USER, DEVICE_PASSWORD = "device", "device-test-password"


@dataclass
class Broker:
    host: str
    port: int
    service: Service
    dir: Path

    def url(self, user: str = HUB_USER, password: str = HUB_PASSWORD) -> str:
        return f"mqtt://{user}:{password}@{self.host}:{self.port}"

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        """Publish one message as a device and wait until the broker has it."""
        publish_many([(topic, payload)], self, qos=qos, retain=retain)

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (Mosquitto saves its persistence file and exits) or SIGKILL (whatever is unsaved is gone)."""
        if kill:
            self.service.kill()
        else:
            self.service.stop()

    def start(self) -> float:
        """Start again on the same port and data dir after `stop()`; returns time.time() once it listens."""
        self.service = Service(self.service.argv, self.dir / "mosquitto.log")
        wait_until(lambda: port_open(self.port), interval=0.01, what="mosquitto to listen again")
        return time.time()

    def restart(self, kill: bool = False, down_s: float = 0.0) -> float:
        """Stop (SIGTERM, or SIGKILL with `kill`), stay down `down_s`, start again; returns when it listened."""
        self.stop(kill)
        time.sleep(down_s)
        return self.start()


def publish_many(
    messages: list[tuple[str, bytes | str]], broker: Broker, qos: int = 1, retain: bool = False
) -> None:
    """Publish messages in order through one device connection (QoS 1: each acknowledged)."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(DEVICE_USER, DEVICE_PASSWORD)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=qos, retain=retain) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=10)
            assert info.is_published(), "broker did not acknowledge a publish"
    finally:
        client.loop_stop()
        client.disconnect()


def read_retained(broker: Broker, topic_filter: str, wait_s: float = 0.7) -> dict[str, bytes]:
    """What a fresh subscriber receives on `topic_filter` (the retained messages), as a device."""
    got: dict[str, bytes] = {}
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.username_pw_set(DEVICE_USER, DEVICE_PASSWORD)
    client.on_message = lambda c, u, m: got.__setitem__(m.topic, m.payload)
    client.connect(broker.host, broker.port)
    client.subscribe(topic_filter, qos=1)
    client.loop_start()
    time.sleep(wait_s)
    client.loop_stop()
    client.disconnect()
    return got


MAX_INFLIGHT_MESSAGES = 1000
"""QoS 1 messages Mosquitto has out to one client before it waits for PUBACKs, as the shipped
mosquitto.conf sets it: a hub that acknowledges only after its outbox commit needs a window
wider than the default 20 to keep up."""
AUTOSAVE_INTERVAL_S = 1
"""With `persistence=True`: how often Mosquitto writes its queues and sessions to disk."""


def start_mosquitto(directory: Path, persistence: bool = False) -> Broker:
    """A Mosquitto on a free port; `persistence=True` keeps sessions and queues in `directory` across restarts."""
    binary = require_binary("mosquitto", "mosquitto")
    passwd_tool = require_binary("mosquitto_passwd", "mosquitto")
    directory.mkdir(parents=True, exist_ok=True)
    passwd = directory / "passwd"
    subprocess.run([passwd_tool, "-c", "-b", str(passwd), HUB_USER, HUB_PASSWORD], check=True)
    subprocess.run([passwd_tool, "-b", str(passwd), DEVICE_USER, DEVICE_PASSWORD], check=True)
    port = free_service_port()  # restarted on the same port by the fault tests
    conf = directory / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous false",
        f"password_file {passwd}",
        *(["persistence true", f"persistence_location {directory}/", f"autosave_interval {AUTOSAVE_INTERVAL_S}"]
          if persistence else ["persistence false"]),
        "max_queued_messages 1000000",  # as the shipped mosquitto.conf: a slow hub is queued for, not dropped
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        "message_size_limit 0",
    ]
    if os.geteuid() == 0:
        lines.append("user root")  # keep root so the broker can read files in the root-owned temp dir
    conf.write_text("\n".join(lines) + "\n")
    service = Service([binary, "-c", str(conf)], directory / "mosquitto.log")
    try:
        wait_until(lambda: port_open(port), timeout=10, what="mosquitto to listen")
    except TimeoutError:
        service.stop()
        raise RuntimeError(f"mosquitto did not start:\n{service.log()}") from None
    return Broker("127.0.0.1", port, service, directory)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One real Mosquitto for the session; tests isolate themselves by topic root."""
    broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.service.stop()


@pytest.fixture
def root() -> str:
    """A fresh topic root per test, so tests never see each other's messages."""
    return f"t{uuid.uuid4().hex[:10]}"
