"""The hub's own MQTT connection against a real Mosquitto, broken in the ways brokers and networks break.

Every failure must end in a logged reconnect with backoff (never a silent stop),
and nothing may be acknowledged before the outbox committed it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hub.config import parse_mqtt_url
from hub.mqtt import MqttLink, RawMessage
from tests.support.hub_fixtures import eventually, running_hub
from tests.support.mqtt_fixtures import HUB_PASSWORD, Broker, start_mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.services]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test's own: these tests freeze and kill it."""
    broker = start_mosquitto(tmp_path / "mosquitto")
    yield broker
    if broker.service.alive():
        os.kill(broker.service.proc.pid, signal.SIGCONT)
    broker.service.stop()


class Received:
    def __init__(self) -> None:
        self.messages: list[RawMessage] = []
        self.commits = 0

    def on_batch(self, batch: list[RawMessage], _received_ms: int) -> None:
        self.messages.extend(batch)

    def commit(self) -> None:
        self.commits += 1


@pytest.fixture
async def link_on(request: pytest.FixtureRequest) -> AsyncIterator:  # type: ignore[type-arg]
    """Start MqttLinks on a URL; they are cancelled at the end of the test."""
    tasks: list[asyncio.Task[None]] = []

    def start(url: str, got: Received, **kwargs: object) -> MqttLink:
        link = MqttLink(parse_mqtt_url(url), f"link-{request.node.name[:40]}", ["#"], got.on_batch, got.commit,
                        **kwargs)  # type: ignore[arg-type]
        tasks.append(asyncio.create_task(link.run()))
        return link

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_frozen_broker_is_a_keepalive_timeout_then_a_reconnect(own_broker, link_on, caplog) -> None:  # type: ignore[no-untyped-def]
    got = Received()
    link = link_on(own_broker.url(), got, keepalive_s=2)
    await eventually(lambda: link.connected, what="connected")
    os.kill(own_broker.service.proc.pid, signal.SIGSTOP)  # the TCP connection stays up; nothing answers
    await eventually(lambda: not link.connected, timeout=6, what="the keepalive timeout")
    assert "keepalive timeout" in (link.last_error or "")
    os.kill(own_broker.service.proc.pid, signal.SIGCONT)
    await eventually(lambda: link.connected and link.connects >= 2, timeout=15, what="a reconnect")
    assert any("reconnecting in" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


async def test_a_killed_broker_is_reconnected_to_when_it_is_back(own_broker, link_on, caplog) -> None:  # type: ignore[no-untyped-def]
    got = Received()
    link = link_on(own_broker.url(), got)
    await eventually(lambda: link.connected, what="connected")
    own_broker.service.proc.kill()  # a reset, not a goodbye
    await eventually(lambda: not link.connected, timeout=5, what="the loss to be seen")
    await asyncio.to_thread(own_broker.restart)
    await eventually(lambda: link.connected, timeout=12, what="a reconnect after the broker's return")
    await asyncio.to_thread(own_broker.publish, "a/b", b"after")
    await eventually(lambda: any(m[1] == b"after" for m in got.messages), what="a message after the return")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("reconnecting in" in w for w in warnings), warnings


async def test_a_refused_login_says_why_and_keeps_trying(own_broker, link_on) -> None:  # type: ignore[no-untyped-def]
    link = link_on(own_broker.url(password=HUB_PASSWORD + "-wrong"), Received())
    await eventually(lambda: link.last_error, what="the refusal")
    assert "bad user name or password" in link.last_error or "not authorized" in link.last_error
    await asyncio.sleep(1.0)
    assert not link.connected and link.connects == 0


async def serve_once(reply: bytes) -> tuple[asyncio.Server, list[int]]:
    """A TCP peer that is no broker: it answers every connection with `reply`, then closes it."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        await reader.read(1024)  # the CONNECT
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, accepted


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (b"\x20\x02\x00\x00" + b"\xf0\x00", "protocol error"),  # CONNACK, then an AUTH packet on 3.1.1
        (b"\x20\x02\x00\x00" + b"\x30\xff\xff\xff\xff\x7f", "protocol error"),  # a 5-byte remaining length
        (b"", "closed"),  # EOF before any CONNACK
    ],
)
async def test_garbage_or_eof_from_the_peer_ends_in_a_reconnect(link_on, reply: bytes, why: str) -> None:  # type: ignore[no-untyped-def]
    server, accepted = await serve_once(reply)
    port = server.sockets[0].getsockname()[1]
    async with server:
        link = link_on(f"mqtt://hub:x@127.0.0.1:{port}", Received())
        await eventually(lambda: len(accepted) >= 3, timeout=8, what="repeated reconnects with backoff")
        assert why in (link.last_error or ""), link.last_error


async def test_nothing_is_acknowledged_before_the_outbox_committed(settings_for, mosquitto) -> None:  # type: ignore[no-untyped-def]
    """The outbox fails once: the hub must not acknowledge, the broker sends the message again (DUP),
    and it is stored once, although it carries no `ts` (its point time is the receive time)."""
    async with running_hub(settings_for("embedded"), mosquitto) as run:
        hub, failures = run.hub, []
        commit = hub.outbox.commit

        def failing_commit(*args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            if not failures:
                failures.append(1)
                raise sqlite3.OperationalError("disk I/O error")
            commit(*args, **kwargs)

        hub.outbox.commit = failing_commit  # type: ignore[method-assign]
        await run.publish(run.topic("gate", "g1", "event"), {"type": "barrier", "state": "open"})
        await eventually(lambda: hub.mqtt.losses >= 1 and hub.mqtt.connected, timeout=15,
                         what="the hub to drop the connection and come back")
        await eventually(lambda: hub.pipeline.stats.redelivered == 1, timeout=10, what="the redelivery")
        await run.stored()
        assert len(await run.events(kind="gate", device="g1")) == 1


async def test_a_redelivery_after_a_restart_is_stored_once(settings_for, mosquitto) -> None:  # type: ignore[no-untyped-def]
    """Committed but not acknowledged when the hub went down: the broker sends it again with DUP,
    and the next hub (reading the keys from the outbox file) drops it."""
    settings = settings_for("embedded")
    async with running_hub(settings, mosquitto) as run:
        hub = run.hub
        write = hub.mqtt._conn.write  # type: ignore[union-attr]
        hub.mqtt._conn.write = lambda data: None if data[:1] == b"\x40" else write(data)  # type: ignore[union-attr]  # PUBACKs lost
        await run.publish(run.topic("gate", "g1", "event"), {"type": "barrier", "state": "stuck"})
        await eventually(lambda: hub.pipeline.stats.accepted[("gate", "event")] == 1, what="the first copy")
        await run.stored()
    async with running_hub(settings, mosquitto) as run:
        await eventually(lambda: run.hub.pipeline.stats.redelivered == 1, timeout=10, what="the DUP copy")
        await run.stored()
        assert [e["state"] for e in await run.events(kind="gate", device="g1")] == ["stuck"]

