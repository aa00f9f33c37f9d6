"""The demo's embedded broker, checked with paho (a real MQTT client) the way Mosquitto behaves."""

from __future__ import annotations

import asyncio
import itertools
import queue
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import paho.mqtt.client as paho
import pytest

from hub.embedded_broker import Broker, matches, valid_filter

pytestmark = pytest.mark.integration

USERS = {"hub": "hub-pw"} | {f"dev{i}": "dev-pw" for i in range(400)}
_devs = itertools.count()


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    async with Broker("127.0.0.1", 0, USERS) as b:
        yield b


class Client:
    """A paho client on its own thread with a queue of what it received."""

    def __init__(self, port: int, user: str | None = None, password: str = "dev-pw", client_id: str | None = None,
                 clean: bool = True, will: tuple[str, bytes] | None = None) -> None:
        user = user or f"dev{next(_devs) % 400}"  # the client id is the login: one login, one session
        self.received: queue.Queue[tuple[str, bytes, int, bool]] = queue.Queue()
        self.paho = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id or uuid.uuid4().hex[:10],
                                clean_session=clean)
        self.paho.username_pw_set(user, password)
        if will:
            self.paho.will_set(will[0], will[1], qos=1, retain=True)
        self.paho.on_message = lambda c, u, m: self.received.put((m.topic, m.payload, m.qos, bool(m.retain)))
        self.connack: queue.Queue[tuple[bool, int]] = queue.Queue()
        self.paho.on_connect = lambda c, u, flags, rc, p=None: self.connack.put((flags.session_present, rc.value))
        self.paho.connect("127.0.0.1", port, keepalive=5)
        self.paho.loop_start()

    def result(self) -> tuple[bool, int]:
        return self.connack.get(timeout=5)

    def sub(self, topic_filter: str, qos: int = 1) -> None:
        _, mid = self.paho.subscribe(topic_filter, qos)
        time.sleep(0.1)

    def pub(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.paho.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def take(self, n: int, timeout: float = 5) -> list[tuple[str, bytes, int, bool]]:
        return [self.received.get(timeout=timeout) for _ in range(n)]

    def nothing(self, wait: float = 0.3) -> bool:
        time.sleep(wait)
        return self.received.empty()

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()

    def kill(self) -> None:
        """Vanish without DISCONNECT, like a device losing power."""
        self.paho.loop_stop()
        self.paho.socket().shutdown(socket.SHUT_RDWR)


@contextmanager
def clients(port: int, n: int = 2, **kw: object) -> Iterator[list[Client]]:
    made = [Client(port, **kw) for _ in range(n)]  # type: ignore[arg-type]
    try:
        yield made
    finally:
        for c in made:
            c.close()


def run(fn):  # type: ignore[no-untyped-def]
    """Run blocking paho code off the event loop the broker lives on."""
    return asyncio.to_thread(fn)


def test_topic_matching() -> None:
    assert matches("a/+/c", "a/b/c") and matches("a/#", "a") and matches("a/#", "a/b/c") and matches("#", "a/b")
    assert not matches("a/+", "a/b/c") and not matches("+/b", "$SYS/b") and not matches("#", "$SYS/x")
    assert valid_filter("a/+/#") and not valid_filter("a/#/b") and not valid_filter("a/b+") and not valid_filter("")


async def test_no_anonymous_or_wrong_password(broker: Broker) -> None:
    def check() -> None:
        assert Client(broker.port, user="dev0", password="nope").result()[1] == 135  # paho: "Not authorized"
        c = paho.Client(paho.CallbackAPIVersion.VERSION2)
        got: queue.Queue[int] = queue.Queue()
        c.on_connect = lambda cl, u, f, rc, p=None: got.put(rc.value)
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        assert got.get(timeout=5) == 135
        c.loop_stop()
    await run(check)


async def test_wildcards_qos_and_retained(broker: Broker) -> None:
    def check() -> None:
        with clients(broker.port, 2) as (sub, pub):
            assert sub.result()[1] == 0 and pub.result()[1] == 0
            sub.sub("c/+/elevator/+/telemetry", qos=1)
            sub.sub("c/s1/#", qos=0)
            pub.pub("c/s1/elevator/e1/telemetry", b"1", qos=1)
            [(topic, payload, qos, retain)] = sub.take(1)
            assert (topic, payload, qos, retain) == ("c/s1/elevator/e1/telemetry", b"1", 1, False)  # once, best QoS
            pub.pub("c/s2/elevator/e1/telemetry", b"2", qos=0)
            assert sub.take(1)[0][2] == 0  # never upgraded above the publisher's QoS
            pub.pub("c/s1/gate/g1/state", b'{"online":true}', retain=True)
            assert sub.take(1)[0][3] is False  # live delivery is not flagged retained
            assert sub.nothing()
        with clients(broker.port, 1) as (late,):
            late.result()
            assert late.nothing()  # retained messages only follow a subscription
            late.sub("c/+/gate/+/state")
            assert late.take(1) == [("c/s1/gate/g1/state", b'{"online":true}', 1, True)]
        with clients(broker.port, 2) as (pub, late):
            pub.result(), late.result()
            pub.pub("c/s1/gate/g1/state", b"", retain=True)  # clears it
            late.sub("c/#")
            assert late.nothing()
    await run(check)


async def test_last_will_on_power_loss_but_not_on_clean_disconnect(broker: Broker) -> None:
    def check() -> None:
        with clients(broker.port, 1) as (watcher,):
            watcher.result()
            watcher.sub("c/+/+/+/state")
            dying = Client(broker.port, will=("c/s/gate/g9/state", b'{"online": false}'))
            dying.result()
            dying.kill()
            assert watcher.take(1) == [("c/s/gate/g9/state", b'{"online": false}', 1, False)]
            polite = Client(broker.port, will=("c/s/gate/g8/state", b'{"online": false}'))
            polite.result()
            polite.close()
            assert watcher.nothing()
        assert "c/s/gate/g9/state" in broker.retained
    await run(check)


async def test_persistent_session_queues_qos1_while_away(broker: Broker) -> None:
    def check() -> None:
        hub = Client(broker.port, user="hub", password="hub-pw", client_id="the-hub", clean=False)
        assert hub.result() == (False, 0)
        hub.sub("c/#")
        hub.close()
        with clients(broker.port, 1) as (pub,):
            pub.result()
            for i in range(5):
                pub.pub(f"c/s/e/{i}/event", b"x", qos=1)
            pub.pub("c/s/e/9/event", b"qos0", qos=0)  # QoS 0 is not queued for the absent
        back = Client(broker.port, user="hub", password="hub-pw", client_id="the-hub", clean=False)
        assert back.result() == (True, 0)
        assert sorted(t for t, *_ in back.take(5)) == [f"c/s/e/{i}/event" for i in range(5)]
        assert back.nothing()
        back.close()
    await run(check)


async def test_session_takeover_keeps_one_connection(broker: Broker) -> None:
    def check() -> None:
        first = Client(broker.port, user="dev399", client_id="dup")
        first.result()
        first.paho.reconnect_delay_set(30, 60)
        second = Client(broker.port, user="dev399", client_id="other")  # the login decides, not the sent id
        assert second.result()[1] == 0
        time.sleep(0.2)
        assert broker.sessions["dev399"].conn is not None and len(broker.sessions) == 1
        second.close()
        first.paho.loop_stop()
    await run(check)


async def test_staggered_connect_storm_with_retained_messages_and_a_wildcard_subscriber(broker: Broker) -> None:
    """What made amqtt crash (STACK-NOTES section 4): clients arriving 5 ms apart while 2,000 retained
    states exist and a wildcard subscriber watches. Every client connects, the subscriber sees every will."""
    def check() -> None:
        with clients(broker.port, 1) as (seed,):
            seed.result()
            for i in range(2000):
                seed.paho.publish(f"c/s/access/d{i}/state", b'{"online": true}', qos=0, retain=True)
            seed.pub("c/s/access/last/state", b'{"online": true}', retain=True)
        watcher = Client(broker.port)
        watcher.result()
        watcher.sub("c/+/+/+/state")
        assert len(watcher.take(2001, timeout=10)) == 2001  # the retained ones
        devices = []
        for i in range(150):
            devices.append(Client(broker.port, client_id=f"storm-{i}", will=(f"c/s/camera/c{i}/state", b"off")))
            time.sleep(0.005)
        assert all(d.result()[1] == 0 for d in devices)
        for d in devices:
            d.kill()
        wills = watcher.take(150, timeout=10)
        assert sorted(t for t, *_ in wills) == sorted(f"c/s/camera/c{i}/state" for i in range(150))
        watcher.close()
    await run(check)
    assert threading.active_count() < 400
