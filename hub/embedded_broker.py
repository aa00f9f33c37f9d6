"""A small MQTT 3.1.1 broker inside the hub's process, for `smarthub demo` only.

Production runs Mosquitto (or any MQTT 3.1.1/5 broker). The demo needs a broker
that is always there and behaves the same on every machine, without a system
package. amqtt, the obvious candidate, fails what the demo needs
(STACK-NOTES section 4): it crashes under staggered connects while retained
messages exist, sends retained messages to clients that never subscribed,
upgrades QoS 0 to 1 and loses persistent sessions. This broker does the subset
the hub and its simulators use, correctly:

- MQTT 3.1.1 (and 3.1) CONNECT with username and password, clean and persistent
  sessions (subscriptions kept, QoS 1 messages queued while away), session takeover;
- PUBLISH QoS 0 and 1 (QoS 2 is accepted and delivered at most at QoS 1),
  retained messages (an empty one clears), last wills on an unclean disconnect
  or a keep-alive timeout;
- SUBSCRIBE / UNSUBSCRIBE with `+` and `#`, `$` topics hidden from leading wildcards;
- no retransmission of unacknowledged messages: it runs on loopback TCP.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import struct
from collections import deque
from dataclasses import dataclass, field

from hub.mqtt_packets import varint

log = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14
MAX_PACKET_BYTES = 1024 * 1024
MAX_QUEUED = 100_000
"""QoS 1 messages kept for a persistent session while its client is away."""
MAX_WRITE_BUFFER = 32 * 1024 * 1024
"""A client this far behind is disconnected rather than allowed to eat the demo's memory."""


class ProtocolError(Exception):
    pass


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic matching with `+` and `#`; `$` topics are not matched by a leading wildcard."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_parts, t_parts = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(f_parts) == len(t_parts)


def valid_filter(topic_filter: str) -> bool:
    parts = topic_filter.split("/")
    return bool(topic_filter) and all(
        ("#" not in p or (p == "#" and i == len(parts) - 1)) and ("+" not in p or p == "+")
        for i, p in enumerate(parts)
    )


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([(kind << 4) | flags]) + varint(len(body)) + body


def utf8(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


class Reader:
    """Field reader over one packet body."""

    def __init__(self, body: bytes) -> None:
        self.body, self.pos = body, 0

    def u8(self) -> int:
        self.pos += 1
        return self.body[self.pos - 1]

    def u16(self) -> int:
        self.pos += 2
        return int(struct.unpack_from("!H", self.body, self.pos - 2)[0])

    def blob(self) -> bytes:
        n = self.u16()
        self.pos += n
        if self.pos > len(self.body):
            raise ProtocolError("field runs past the packet")
        return self.body[self.pos - n:self.pos]

    def text(self) -> str:
        try:
            return self.blob().decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("string is not UTF-8") from None

    def rest(self) -> bytes:
        return self.body[self.pos:]

    def more(self) -> bool:
        return self.pos < len(self.body)


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool = False


@dataclass
class Session:
    client_id: str
    clean: bool
    subscriptions: dict[str, int] = field(default_factory=dict)
    queue: deque[Message] = field(default_factory=lambda: deque(maxlen=MAX_QUEUED))
    conn: Connection | None = None


class Connection:
    def __init__(self, broker: Broker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.broker = broker
        self.reader = reader
        self.writer = writer
        self.session: Session | None = None
        self.will: Message | None = None
        self.keepalive = 0
        self._ids = itertools.cycle(range(1, 65536))

    def send(self, data: bytes) -> None:
        if self.writer.is_closing():
            return
        if self.writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("MQTT client %s is too far behind; disconnecting it", self.session and self.session.client_id)
            self.writer.transport.abort()
            return
        self.writer.write(data)

    def deliver(self, msg: Message, qos: int, retain: bool = False) -> None:
        qos = min(qos, msg.qos, 1)
        body = utf8(msg.topic) + (struct.pack("!H", next(self._ids)) if qos else b"") + msg.payload
        self.send(packet(PUBLISH, (qos << 1) | int(retain), body))

    async def read_packet(self) -> tuple[int, int, bytes]:
        first = (await self.reader.readexactly(1))[0]
        length, multiplier = 0, 1
        for _ in range(4):
            byte = (await self.reader.readexactly(1))[0]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            if not byte & 0x80:
                break
        else:
            raise ProtocolError("malformed remaining length")
        if length > MAX_PACKET_BYTES:
            raise ProtocolError(f"packet of {length} bytes is over the limit")
        body = await self.reader.readexactly(length) if length else b""
        return first >> 4, first & 0x0F, body

    async def serve(self) -> None:
        clean_exit = False
        try:
            kind, _, body = await asyncio.wait_for(self.read_packet(), timeout=10)
            if kind != CONNECT or not self.connect(body):
                return
            while True:
                timeout = self.keepalive * 1.5 if self.keepalive else None
                kind, flags, body = await asyncio.wait_for(self.read_packet(), timeout=timeout)
                if kind == DISCONNECT:
                    clean_exit = True
                    return
                self.handle(kind, flags, body)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ProtocolError, IndexError,
                struct.error) as exc:
            log.debug("MQTT connection ended: %r", exc)
        finally:
            self.broker.disconnected(self, clean_exit)
            self.writer.close()

    def connect(self, body: bytes) -> bool:
        r = Reader(body)
        name, level = r.text(), r.u8()
        if (name, level) not in (("MQTT", 4), ("MQIsdp", 3)):
            self.send(packet(CONNACK, 0, b"\x00\x01"))  # unacceptable protocol version
            return False
        flags, self.keepalive = r.u8(), r.u16()
        client_id = r.text()
        clean = bool(flags & 0x02)
        if flags & 0x04:
            topic, payload = r.text(), r.blob()
            self.will = Message(topic, payload, (flags >> 3) & 3, bool(flags & 0x20))
        username = r.text() if flags & 0x80 else None
        password = r.blob().decode("utf-8", "replace") if flags & 0x40 else None
        if not client_id:
            if not clean:
                self.send(packet(CONNACK, 0, b"\x00\x02"))  # identifier rejected
                return False
            client_id = "auto-" + secrets.token_hex(8)
        if not self.broker.authorised(username, password):
            self.send(packet(CONNACK, 0, b"\x00\x05"))  # not authorised
            return False
        present = self.broker.attach(self, client_id, clean)
        self.send(packet(CONNACK, 0, bytes([int(present), 0])))
        assert self.session is not None
        while self.session.queue:
            msg = self.session.queue.popleft()
            self.deliver(msg, msg.qos)
        return True

    def handle(self, kind: int, flags: int, body: bytes) -> None:
        r = Reader(body)
        if kind == PUBLISH:
            qos = (flags >> 1) & 3
            topic = r.text()
            if not topic or "+" in topic or "#" in topic:
                raise ProtocolError(f"cannot publish to {topic!r}")
            packet_id = r.u16() if qos else 0
            self.broker.route(Message(topic, r.rest(), min(qos, 1), bool(flags & 1)))
            if qos == 1:
                self.send(packet(PUBACK, 0, struct.pack("!H", packet_id)))
            elif qos == 2:
                self.send(packet(PUBREC, 0, struct.pack("!H", packet_id)))
        elif kind == PUBREL:
            self.send(packet(PUBCOMP, 0, body[:2]))
        elif kind == SUBSCRIBE:
            packet_id, granted, new = r.u16(), bytearray(), []
            while r.more():
                topic_filter, qos = r.text(), r.u8() & 3
                if valid_filter(topic_filter):
                    granted.append(min(qos, 1))
                    new.append((topic_filter, min(qos, 1)))
                else:
                    granted.append(0x80)
            self.send(packet(SUBACK, 0, struct.pack("!H", packet_id) + bytes(granted)))
            for topic_filter, qos in new:
                self.broker.subscribe(self, topic_filter, qos)
        elif kind == UNSUBSCRIBE:
            packet_id = r.u16()
            while r.more():
                self.broker.unsubscribe(self, r.text())
            self.send(packet(UNSUBACK, 0, struct.pack("!H", packet_id)))
        elif kind == PINGREQ:
            self.send(packet(PINGRESP, 0, b""))
        elif kind not in (PUBACK, PUBCOMP):
            raise ProtocolError(f"unexpected packet type {kind}")


class Broker:
    """`async with Broker(host, port, users) as broker:`; port 0 picks a free one."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, users: dict[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        self.users = users
        self.sessions: dict[str, Session] = {}
        self.retained: dict[str, Message] = {}
        self._exact: dict[str, set[str]] = {}
        """topic -> client ids subscribed to exactly that topic (every device's own cmd topic)"""
        self._wild: dict[str, dict[str, int]] = {}
        """filter with wildcards -> {client id: qos}"""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.messages = 0

    async def __aenter__(self) -> Broker:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("embedded MQTT broker on %s:%d", self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            for session in self.sessions.values():
                if session.conn is not None:
                    session.conn.writer.transport.abort()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await Connection(self, reader, writer).serve()
        finally:
            self._tasks.discard(task)

    def authorised(self, username: str | None, password: str | None) -> bool:
        if self.users is None:
            return True
        return username is not None and password is not None and secrets.compare_digest(
            self.users.get(username, "\0").encode(), password.encode())

    def attach(self, conn: Connection, client_id: str, clean: bool) -> bool:
        """Bind a connection to its session (taking over a live one); True if a session was resumed."""
        session = self.sessions.get(client_id)
        if session is not None and session.conn is not None:
            old = session.conn
            old.will = None  # replaced, not lost: no will
            session.conn = None
            old.writer.transport.abort()
        if session is not None and (clean or session.clean):
            self._drop(session)
            session = None
        present = session is not None
        if session is None:
            session = self.sessions[client_id] = Session(client_id, clean)
        session.conn = conn
        conn.session = session
        return present

    def disconnected(self, conn: Connection, clean_exit: bool) -> None:
        session = conn.session
        if session is None or session.conn is not conn:
            return
        session.conn = None
        if conn.will is not None and not clean_exit:
            self.route(conn.will)
        if session.clean:
            self._drop(session)

    def _drop(self, session: Session) -> None:
        for topic_filter in list(session.subscriptions):
            self._remove(session.client_id, topic_filter)
        self.sessions.pop(session.client_id, None)

    def subscribe(self, conn: Connection, topic_filter: str, qos: int) -> None:
        session = conn.session
        assert session is not None
        session.subscriptions[topic_filter] = qos
        if "+" in topic_filter or "#" in topic_filter:
            self._wild.setdefault(topic_filter, {})[session.client_id] = qos
        else:
            self._exact.setdefault(topic_filter, set()).add(session.client_id)
        for msg in list(self.retained.values()):
            if matches(topic_filter, msg.topic):
                conn.deliver(msg, qos, retain=True)

    def unsubscribe(self, conn: Connection, topic_filter: str) -> None:
        if conn.session is not None and conn.session.subscriptions.pop(topic_filter, None) is not None:
            self._remove(conn.session.client_id, topic_filter)

    def _remove(self, client_id: str, topic_filter: str) -> None:
        exact = self._exact.get(topic_filter)
        if exact is not None:
            exact.discard(client_id)
            if not exact:
                del self._exact[topic_filter]
        wild = self._wild.get(topic_filter)
        if wild is not None:
            wild.pop(client_id, None)
            if not wild:
                del self._wild[topic_filter]

    def route(self, msg: Message) -> None:
        """Retain if asked, then deliver to every matching subscription (once per client)."""
        self.messages += 1
        if msg.retain:
            if msg.payload:
                self.retained[msg.topic] = msg
            else:
                self.retained.pop(msg.topic, None)
        targets: dict[str, int] = {}
        for client_id in self._exact.get(msg.topic, ()):
            targets[client_id] = self.sessions[client_id].subscriptions[msg.topic]
        for topic_filter, subscribers in self._wild.items():
            if matches(topic_filter, msg.topic):
                for client_id, qos in subscribers.items():
                    targets[client_id] = max(qos, targets.get(client_id, 0))
        for client_id, qos in targets.items():
            session = self.sessions[client_id]
            if session.conn is not None:
                session.conn.deliver(msg, qos)
            elif min(qos, msg.qos) == 1:
                session.queue.append(msg)
