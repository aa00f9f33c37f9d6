"""The MQTT edge: one persistent session, QoS 1 subscriptions, reconnect with backoff.

aiomqtt owns the connection (connect, subscribe, publish, errors). The receive
hot path bypasses its per-message `Message`/`Topic` objects and async iterator,
which cost about twice paho's own callback (STACK-NOTES section 8): a plain paho
`on_message` appends raw tuples to a list and the pipeline takes them in one
batch per event-loop turn.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.config import MqttTarget

log = logging.getLogger(__name__)

RawMessage = tuple[str, bytes, bool]
"""(topic, payload, retain)"""

SESSION_EXPIRY_S = 7 * 24 * 3600
"""On MQTT 5 the broker keeps our session (and queues QoS 1 messages) this long while we are away."""
RECEIVE_MAXIMUM = 65_535
"""MQTT 5: how many unacknowledged QoS 1 messages the broker may send us at once."""
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0


PUBACK = struct.Struct("!BBH")
RECV_BYTES = 256 * 1024
MAX_PACKETS_PER_READ = 2_000
"""Packets handled per socket wake-up before yielding to the event loop (fairness)."""


class BufferedReads:
    """Feed paho from one large recv() instead of three or four tiny ones per packet.

    paho reads a packet as: 1 byte of type, the length bytes one at a time, then
    the body, each a recv() system call; at thousands of messages a second
    that is a large share of the hub's CPU. This serves those reads from a
    buffer filled 256 KiB at a time, and makes one socket wake-up handle every
    complete packet buffered (paho would handle one), coming back by itself
    when it stops early, because the socket will not signal readable again for
    bytes already in our buffer.

    On MQTT 3.1.1 a complete QoS 0/1 PUBLISH in the buffer is decoded here
    directly (topic, payload, packet id: a few slices) and handed to
    `on_publish`; every other packet, and any packet cut by the buffer's end,
    goes through paho as usual.
    """

    def __init__(
        self,
        client: paho.Client,
        loop: asyncio.AbstractEventLoop,
        on_publish: Callable[[str, bytes, bool], None] | None = None,
    ) -> None:
        self._client = client
        self._loop = loop
        self._on_publish = on_publish if client._protocol == paho.MQTTv311 else None  # noqa: SLF001
        self._sock: object = None
        self._buf = b""
        self._pos = 0
        self._acks: list[bytes] = []
        client._sock_recv = self.recv  # type: ignore[method-assign]  # noqa: SLF001
        client.loop_read = self.loop_read  # type: ignore[method-assign]
        client._send_puback = self._queue_puback  # type: ignore[method-assign]  # noqa: SLF001

    def _queue_puback(self, mid: int) -> paho.MQTTErrorCode:
        """Collect PUBACKs and send them as one write per wake-up instead of one per message."""
        self._acks.append(PUBACK.pack(0x40, 2, mid))
        return paho.MQTTErrorCode.MQTT_ERR_SUCCESS

    def _send_acks(self) -> None:
        if self._acks and self._client._sock is not None:  # noqa: SLF001
            acks, self._acks = b"".join(self._acks), []
            self._client._packet_queue(paho.PUBACK, acks, 0, 0)  # noqa: SLF001
        self._acks.clear()

    def _fill(self) -> bool:
        """Make sure the buffer has bytes; False when the connection was closed. Raises BlockingIOError."""
        sock = self._client._sock  # noqa: SLF001
        if sock is None:
            raise ConnectionError("not connected")
        if sock is not self._sock:  # a new connection: bytes of the old one are meaningless
            self._sock, self._buf, self._pos = sock, b"", 0
        if self._pos < len(self._buf):
            return True
        try:
            data = sock.recv(RECV_BYTES)
        except ssl.SSLWantReadError as err:
            raise BlockingIOError from err
        except ssl.SSLWantWriteError as err:
            self._client._call_socket_register_write()  # noqa: SLF001
            raise BlockingIOError from err
        self._buf, self._pos = data, 0
        return bool(data)

    def recv(self, bufsize: int) -> bytes:
        if not self._fill():
            return b""  # closed by the broker; paho reports the connection lost
        chunk = self._buf[self._pos:self._pos + bufsize]
        self._pos += len(chunk)
        return chunk

    def _fast_publish(self) -> bool:
        """Decode one complete QoS 0/1 PUBLISH at the buffer position; False to leave it to paho."""
        buf, pos = self._buf, self._pos
        end = len(buf)
        first = buf[pos]
        qos = (first >> 1) & 3
        if first & 0xF0 != 0x30 or qos == 2:
            return False
        length, multiplier, i = 0, 1, pos + 1
        while True:  # the remaining length: 1 to 4 bytes, 7 bits each
            if i >= end or i - pos > 4:
                return False
            byte = buf[i]
            length += (byte & 0x7F) * multiplier
            multiplier <<= 7
            i += 1
            if not byte & 0x80:
                break
        packet_end = i + length
        if packet_end > end:
            return False
        topic_end = i + 2 + ((buf[i] << 8) | buf[i + 1])
        topic = buf[i + 2:topic_end].decode("utf-8", "surrogateescape")
        if qos:
            self._acks.append(PUBACK.pack(0x40, 2, (buf[topic_end] << 8) | buf[topic_end + 1]))
            topic_end += 2
        self._pos = packet_end
        self._on_publish(topic, buf[topic_end:packet_end], bool(first & 1))  # type: ignore[misc]
        return True

    def loop_read(self, max_packets: int = 1) -> paho.MQTTErrorCode:
        try:
            return self._read_packets()
        finally:
            self._send_acks()

    def _read_packets(self) -> paho.MQTTErrorCode:
        client = self._client
        for _ in range(MAX_PACKETS_PER_READ):
            if client._sock is None:  # noqa: SLF001
                return paho.MQTTErrorCode.MQTT_ERR_NO_CONN
            if self._on_publish is not None and client._in_packet["command"] == 0:  # noqa: SLF001 - paho is idle
                try:
                    filled = self._fill()
                except BlockingIOError:
                    return paho.MQTTErrorCode.MQTT_ERR_SUCCESS
                if filled and self._fast_publish():
                    client._last_bytes_received = paho.time_func()  # noqa: SLF001 - keep-alive bookkeeping
                    continue
            rc = client._packet_read()  # noqa: SLF001
            if rc > 0:
                return client._loop_rc_handle(rc)  # type: ignore[no-any-return]  # noqa: SLF001
            if rc == paho.MQTTErrorCode.MQTT_ERR_AGAIN:
                return paho.MQTTErrorCode.MQTT_ERR_SUCCESS
        if self._pos < len(self._buf):
            self._loop.call_soon(self._read_buffered)
        return paho.MQTTErrorCode.MQTT_ERR_SUCCESS

    def _read_buffered(self) -> None:
        try:
            self.loop_read()
        except Exception:  # noqa: BLE001 - like aiomqtt's reader: a broken socket ends in a disconnect
            log.debug("reading buffered MQTT packets failed", exc_info=True)


class MqttLink:
    """Keeps the hub connected and feeds every received message batch to `on_batch`."""

    def __init__(
        self,
        target: MqttTarget,
        client_id: str,
        subscriptions: list[str],
        on_batch: Callable[[list[RawMessage], int], None],
        protocol: str = "3.1.1",
    ) -> None:
        self.target = target
        self.client_id = client_id
        self.subscriptions = subscriptions
        self.on_batch = on_batch
        self.protocol = protocol
        self.connected = False
        self.connects = 0
        self._client: aiomqtt.Client | None = None
        self._inbox: list[RawMessage] = []
        self._drain_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def inbox_depth(self) -> int:
        return len(self._inbox)

    def _make_client(self) -> aiomqtt.Client:
        v5 = self.protocol == "5"
        kwargs: dict[str, Any] = {}
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            props.ReceiveMaximum = RECEIVE_MAXIMUM
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props)
        else:
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V311, clean_session=False)
        client = aiomqtt.Client(
            self.target.host,
            self.target.port,
            username=self.target.username,
            password=self.target.password,
            identifier=self.client_id,
            tls_context=self.target.tls,
            keepalive=30,
            **kwargs,
        )
        paho_client = client._client  # noqa: SLF001 - the hot path, see module docstring
        paho_client.on_message = self._on_message
        paho_client.disable_logger()  # paho formats a debug line per packet otherwise
        BufferedReads(paho_client, self._loop or asyncio.get_running_loop(), self._receive)
        return client

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        self._receive(message.topic, message.payload, message.retain)

    def _receive(self, topic: str, payload: bytes, retain: bool) -> None:
        self._inbox.append((topic, payload, retain))
        if not self._drain_scheduled:
            self._drain_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        batch, self._inbox = self._inbox, []
        if batch:
            self.on_batch(batch, time.time_ns() // 1_000_000)

    async def run(self) -> None:
        """Connect, subscribe and stay connected until cancelled."""
        self._loop = asyncio.get_running_loop()
        backoff = BACKOFF_MIN_S
        self._client = self._make_client()
        while True:
            try:
                async with self._client as client:
                    for topic in self.subscriptions:
                        await client.subscribe(topic, qos=1)
                    self.connected = True
                    self.connects += 1  # counts reconnects too; tests and /metrics read it
                    backoff = BACKOFF_MIN_S
                    log.info("connected to MQTT %s:%d as %s", self.target.host, self.target.port, self.client_id)
                    # Messages arrive through _on_message; wait here until the connection drops.
                    await asyncio.shield(client._disconnected)  # noqa: SLF001
            except aiomqtt.MqttError as exc:
                if self.connected:
                    log.warning("MQTT connection lost: %s", exc)
                else:
                    log.warning("cannot connect to MQTT %s:%d: %s (retrying in %.1fs)",
                                self.target.host, self.target.port, exc, backoff)
            finally:
                self.connected = False
            await asyncio.sleep(backoff * (0.8 + 0.4 * random.random()))
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        """Publish through the hub's own connection; raises aiomqtt.MqttError when it is down."""
        if self._client is None or not self.connected:
            raise aiomqtt.MqttError("not connected to the MQTT broker")
        await self._client.publish(topic, payload, qos=qos, retain=retain)
