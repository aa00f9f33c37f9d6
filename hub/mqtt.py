"""The hub's MQTT connection: a small asyncio client of our own, acknowledging only what is durable.

Why our own (README "Delivery guarantees" has the figures): the hub needs a
QoS 1 PUBACK to leave only after the message is committed to the outbox, in
arrival order, at tens of thousands of messages a second, and every socket
error, EOF, protocol error and keepalive timeout to end in a logged reconnect.
paho's public `manual_ack` path costs about 22 us a message before any work
and sends one PUBACK per `send()`; aiomqtt adds its own per-message objects on
top (STACK-NOTES section 8); and reaching into either's internals for speed
once made a broker reset end ingest silently. The hub only ever connects,
subscribes at QoS 1, receives, acknowledges, publishes at QoS 0/1 and pings,
so it speaks exactly that (`hub.mqtt_packets`) and owns every error path.

Per socket read: decode every complete PUBLISH -> `on_batch` (the pipeline:
live state and alerts at once); within 5 ms -> `commit` (outbox and dead
letters, one SQLite transaction) -> one write with all their PUBACKs. A crash
at any point leaves each message either committed or unacknowledged (the
broker sends it again, flagged DUP).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from hub import mqtt_packets as mp
from hub.config import MqttTarget

log = logging.getLogger(__name__)

RawMessage = mp.Received
"""(topic, payload, retain, packet id, dup)"""

SESSION_EXPIRY_S = 7 * 24 * 3600
"""On MQTT 5 the broker keeps our session (and queues QoS 1 messages) this long while we are away."""
RECEIVE_MAXIMUM = 65_535
"""MQTT 5: how many unacknowledged QoS 1 messages the broker may send us at once."""
KEEPALIVE_S = 30
CONNECT_TIMEOUT_S = 10.0
"""TCP (and TLS) connect, CONNACK and SUBACK must each arrive within this."""
PUBLISH_TIMEOUT_S = 10.0
COMMIT_DELAY_S = 0.005
"""A message is committed (and acknowledged) at most this long after it was read."""
COMMIT_EVERY_MESSAGES = 500
"""...or at once when this many wait: well inside the broker's in-flight window (1,000 in mosquitto.conf)."""
TICK_S = 0.25
"""How often the connection checks keepalive and back-pressure."""
BACKOFF_MIN_S = 0.25
BACKOFF_MAX_S = 2.0
"""A broker back from a restart is reached within this plus jitter (at most 3 s): one hub's attempts
are cheap, and a command center must not wait long after its broker restarts."""


class MqttError(Exception):
    """The connection cannot do what was asked (down, refused, timed out)."""


class _Connection(asyncio.Protocol):
    """One TCP connection's bytes; everything it learns goes straight to the link."""

    def __init__(self, link: MqttLink, protocol: int) -> None:
        self.link = link
        self.reader = mp.Reader(protocol)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[mp.ConnAck] = loop.create_future()
        self.closed: asyncio.Future[str] = loop.create_future()
        self.acks: dict[int, asyncio.Future[tuple[int, ...]]] = {}
        """packet id -> waiter, for our SUBSCRIBE and QoS 1 PUBLISH"""
        self.last_sent = time.monotonic()
        self.ping_sent: float | None = None
        self.paused = False
        self.uncommitted = 0
        """Messages handed to the pipeline since the last commit."""
        self.commit_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self.last_sent = time.monotonic()

    def data_received(self, data: bytes) -> None:
        try:
            controls = self.reader.feed(data)
            for packet in controls:
                self._control(packet)
            self.link._deliver(self)
        except mp.ProtocolError as exc:
            self.abort(f"protocol error: {exc}")
        except Exception as exc:  # noqa: BLE001 - never let a bug here pass silently: reconnect, say why
            log.exception("MQTT receive failed")
            self.abort(f"receive failed: {exc!r}")

    def _control(self, packet: mp.ConnAck | mp.Ack | mp.Control) -> None:
        if isinstance(packet, mp.ConnAck):
            if not self.connack.done():
                self.connack.set_result(packet)
        elif isinstance(packet, mp.Ack):
            waiter = self.acks.pop(packet.packet_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(packet.codes)
        elif packet.kind == mp.Packet.PINGRESP:
            self.ping_sent = None
        else:  # an MQTT 5 broker's DISCONNECT: it closes the connection next
            self.abort(f"broker disconnected us: {mp.reason_text(packet.code, mp.V5)}"
                       + (f", {packet.reason}" if packet.reason else ""))

    def abort(self, why: str) -> None:
        """End the connection now; `closed` carries the reason to the link's log."""
        if not self.closed.done():
            self.closed.set_result(why)
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool:
        if not self.closed.done():
            self.closed.set_result("the broker closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(f"connection lost: {exc!r}" if exc else "connection closed")
        error = MqttError(self.closed.result())
        for waiter in (self.connack, *self.acks.values()):
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()  # retrieved: a waiter nobody awaits any more must not warn
        self.acks.clear()
        self.link._lost(self)


class MqttLink:
    """Keeps the hub connected and subscribed, feeds every received batch to the pipeline, and
    acknowledges it once `commit` returned."""

    def __init__(
        self,
        target: MqttTarget,
        client_id: str,
        subscriptions: list[str],
        on_batch: Callable[[list[RawMessage], int], None],
        commit: Callable[[], None],
        protocol: str = "3.1.1",
        hold_reason: Callable[[], str | None] = lambda: None,
        keepalive_s: int = KEEPALIVE_S,
    ) -> None:
        self.target = target
        self.client_id = client_id
        self.subscriptions = subscriptions
        self.on_batch = on_batch
        self.commit = commit
        self.protocol = mp.V5 if protocol == "5" else mp.V311
        self.hold_reason = hold_reason
        """Asked after every commit and every tick: a reason to stop reading (back-pressure), or None."""
        self.keepalive_s = keepalive_s
        self.connected = False
        self.since = time.time()
        """When `connected` last changed (epoch seconds)."""
        self.last_error: str | None = None
        self.connects = 0
        self.losses = 0
        self.acked = 0
        self.held: str | None = None
        """Why the hub stopped reading from the broker, while it does."""
        self._conn: _Connection | None = None
        self._next_id = 0

    def _set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected, self.since = connected, time.time()

    def _deliver(self, conn: _Connection) -> None:
        """Hand what one read completed to the pipeline now; commit and acknowledge it soon after.

        Live state and alerts see a message at once. The commit (one SQLite
        transaction) waits up to COMMIT_DELAY_S for more messages to share it,
        so its cost is spread over a burst whatever size the socket reads are.
        """
        reader = conn.reader
        if not reader.messages:
            return
        batch, reader.messages = reader.messages, []
        self.on_batch(batch, time.time_ns() // 1_000_000)
        conn.uncommitted += len(batch)
        if conn.uncommitted >= COMMIT_EVERY_MESSAGES:
            self._commit(conn)
        elif conn.commit_timer is None:
            conn.commit_timer = asyncio.get_running_loop().call_later(COMMIT_DELAY_S, self._commit, conn)

    def _commit(self, conn: _Connection) -> None:
        """Make what was handled durable, then send its PUBACKs in arrival order (also after a loss:
        what was handled is committed, and the broker's DUP copies are then recognised)."""
        if conn.commit_timer is not None:
            conn.commit_timer.cancel()
            conn.commit_timer = None
        try:
            self.commit()
        except Exception as exc:  # noqa: BLE001 - disk full, I/O error: acknowledge nothing, start over
            log.error("outbox commit failed; nothing acknowledged, the broker sends it again: %s", exc)
            conn.abort(f"outbox commit failed: {exc}")
            return
        conn.uncommitted = 0
        reader = conn.reader
        if reader.to_ack:
            acks, reader.to_ack = reader.to_ack, []
            conn.write(b"".join(map(mp.puback, acks)))
            self.acked += len(acks)
        self._apply_hold(conn)

    def _apply_hold(self, conn: _Connection) -> None:
        reason = self.hold_reason()
        if reason and not conn.paused and conn.transport is not None:
            conn.transport.pause_reading()  # the broker keeps the rest queued for our session
            conn.paused = True
            log.warning("stopped reading MQTT (the broker queues for us): %s", reason)
        elif not reason and conn.paused and conn.transport is not None:
            conn.transport.resume_reading()
            conn.paused = False
            log.warning("reading MQTT again (was held: %s)", self.held)
        self.held = reason

    def _lost(self, conn: _Connection) -> None:
        if conn is self._conn:
            self._conn = None
            self._set_connected(False)

    async def run(self) -> None:
        """Connect, subscribe and stay connected until cancelled; every failure is logged and retried."""
        backoff = BACKOFF_MIN_S
        while True:
            started = time.monotonic()
            try:
                why = await self._session()
            except asyncio.CancelledError:
                raise
            except (OSError, MqttError, TimeoutError, mp.ProtocolError) as exc:
                why = str(exc) or repr(exc)
            except Exception as exc:  # noqa: BLE001 - an unexpected error still ends in a reconnect
                log.exception("MQTT connection failed unexpectedly")
                why = repr(exc)
            self.last_error = why
            if time.monotonic() - started > 2 * BACKOFF_MAX_S:
                backoff = BACKOFF_MIN_S  # it was up for a while: this is a fresh failure
            delay = backoff * (0.5 + random.random())  # jitter: a fleet of hubs must not reconnect in step
            log.warning("MQTT %s:%d: %s; reconnecting in %.1f s", self.target.host, self.target.port, why, delay)
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _session(self) -> str:
        """One connection from connect to loss; returns why it ended."""
        loop = asyncio.get_running_loop()
        tls = self.target.tls
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            _, conn = await loop.create_connection(
                lambda: _Connection(self, self.protocol), self.target.host, self.target.port,
                ssl=tls, server_hostname=self.target.host if tls else None)
        self._conn = conn
        try:
            return await self._serve(conn)
        finally:
            if conn.transport is not None and not conn.transport.is_closing():
                conn.write(mp.DISCONNECT)  # a clean goodbye (also on cancel): the broker keeps no will of ours
                conn.transport.close()
            self._lost(conn)

    async def _serve(self, conn: _Connection) -> str:
        keepalive = self.keepalive_s
        conn.write(mp.connect(self.client_id, protocol=self.protocol, keepalive_s=keepalive,
                              username=self.target.username, password=self.target.password,
                              session_expiry_s=SESSION_EXPIRY_S, receive_maximum=RECEIVE_MAXIMUM))
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            connack = await conn.connack
        if connack.code:
            detail = f", {connack.reason}" if connack.reason else ""
            raise MqttError(f"connection refused: {mp.reason_text(connack.code, self.protocol)}{detail}")
        keepalive = connack.keepalive_s or keepalive
        codes = await self._request(conn, lambda pid: mp.subscribe(pid, self.subscriptions, self.protocol))
        refused = [t for t, code in zip(self.subscriptions, codes, strict=False) if code >= 0x80]
        if refused or len(codes) != len(self.subscriptions):
            raise MqttError(f"subscription refused for {', '.join(refused) or 'some filters'}")
        self._set_connected(True)
        self.connects += 1
        self.last_error = None
        log.info("connected to MQTT %s:%d as %s (session %s)", self.target.host, self.target.port,
                 self.client_id, "resumed" if connack.session_present else "new")
        while not conn.closed.done():
            await asyncio.wait([conn.closed], timeout=TICK_S)
            self._tick(conn, keepalive)
        self.losses += 1
        return conn.closed.result()

    def _tick(self, conn: _Connection, keepalive_s: int) -> None:
        """Keepalive (section 3.1.2.10) and back-pressure release, a few times a second."""
        if conn.closed.done():
            return
        now = time.monotonic()
        if conn.ping_sent is not None and not conn.paused and now - conn.ping_sent > keepalive_s / 2:
            conn.abort(f"keepalive timeout: no PINGRESP within {keepalive_s / 2:.0f} s")
            return
        if conn.ping_sent is None and now - conn.last_sent >= keepalive_s / 2:
            conn.write(mp.PINGREQ)
            conn.ping_sent = now
        self._apply_hold(conn)

    def _packet_id(self, conn: _Connection) -> int:
        for _ in range(65_535):
            self._next_id = self._next_id % 65_535 + 1
            if self._next_id not in conn.acks:
                return self._next_id
        raise MqttError("no free packet identifier")

    async def _request(self, conn: _Connection, packet: Callable[[int], bytes]) -> tuple[int, ...]:
        """Send a packet that the broker answers by packet id; its reason codes."""
        packet_id = self._packet_id(conn)
        waiter = conn.acks[packet_id] = asyncio.get_running_loop().create_future()
        conn.write(packet(packet_id))
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S if not self.connected else PUBLISH_TIMEOUT_S):
                return await waiter
        except TimeoutError:
            conn.acks.pop(packet_id, None)
            raise MqttError("the broker did not answer in time") from None

    async def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        """Publish on the hub's connection; QoS 1 returns once the broker has it. Raises MqttError."""
        conn = self._conn
        if conn is None or not self.connected:
            raise MqttError("not connected to the MQTT broker")
        body = payload.encode() if isinstance(payload, str) else payload
        if qos == 0:
            conn.write(mp.publish(topic, body, retain=retain, protocol=self.protocol))
            return
        codes = await self._request(conn, lambda pid: mp.publish(topic, body, qos=1, retain=retain, packet_id=pid,
                                                                 protocol=self.protocol))
        if codes and codes[0] >= 0x80:
            raise MqttError(f"publish to {topic} refused: {mp.reason_text(codes[0], mp.V5)}")
