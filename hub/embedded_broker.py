"""A small MQTT 3.1.1 broker inside the hub's process, for `smarthub demo` only.

Production runs Mosquitto (or any MQTT 3.1.1/5 broker). The demo needs a broker
that is always there and behaves the same on every machine, without a system
package. amqtt, the obvious candidate, fails what the demo needs
(STACK-NOTES section 4): it crashes under staggered connects while retained
messages exist, sends retained messages to clients that never subscribed,
upgrades QoS 0 to 1 and loses persistent sessions. This broker does the subset
the hub and its simulators use, and holds to the shipped mosquitto.conf:

- accounts with passwords and the same per-user ACL as `smarthub broker-files`
  writes for Mosquitto (hub.credentials rules): a denied publish is acknowledged
  and dropped, a denied read is never delivered (retained messages included);
- the client id is the login, whatever the client sends (`use_username_as_clientid`):
  nobody takes over the hub's session or kicks a device off;
- MQTT 3.1.1 (and 3.1) clean and persistent sessions, session takeover;
- PUBLISH QoS 0, 1 and 2: QoS 1/2 messages unacknowledged when a connection drops are
  resent with DUP on reconnect; QoS 2 inbound is exactly once (held until PUBREL);
  a persistent session queues QoS 1/2 while its client is away or beyond the in-flight
  window, up to MAX_QUEUED (then new messages are dropped and counted, like Mosquitto);
- retained messages (an empty one clears), last wills on an unclean disconnect or a
  keep-alive timeout;
- SUBSCRIBE / UNSUBSCRIBE with `+` and `#`, `$` topics hidden from leading wildcards.

It refuses what it does not do, as the specification says: MQTT 5 gets CONNACK 0x01
(unacceptable protocol version), `$share/...` subscriptions get SUBACK 0x80, and a
PUBLISH at QoS 3 closes the connection. No persistence across restarts, no TLS.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from collections import deque
from dataclasses import dataclass, field

from hub.credentials import Rule
from hub.mqtt_packets import varint

log = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14
MAX_PACKET_BYTES = 1024 * 1024
MAX_QUEUED = 100_000
"""QoS 1/2 messages a session holds beyond its in-flight ones (client away or behind); more are dropped."""
MAX_INFLIGHT = 1000
"""QoS 1/2 messages out to one client unacknowledged, as the shipped mosquitto.conf sets it."""
MAX_WRITE_BUFFER = 32 * 1024 * 1024
"""QoS 0 messages to a client this far behind are dropped (counted); twice this, it is disconnected."""


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


@dataclass(slots=True)
class Outgoing:
    """A QoS 1/2 message for one session: queued, or in flight under a packet id until acknowledged."""

    msg: Message
    qos: int
    retain: bool = False
    released: bool = False
    """QoS 2: PUBREC came and PUBREL went; PUBCOMP is awaited."""


@dataclass
class Session:
    client_id: str
    clean: bool
    username: str | None = None
    subscriptions: dict[str, int] = field(default_factory=dict)
    queue: deque[Outgoing] = field(default_factory=deque)
    inflight: dict[int, Outgoing] = field(default_factory=dict)
    """Sent and not yet acknowledged, by packet id (insertion order is sending order)."""
    incoming: dict[int, Message | None] = field(default_factory=dict)
    """QoS 2 received and answered with PUBREC, held until PUBREL (None: the ACL dropped it)."""
    conn: Connection | None = None
    dropped: int = 0
    """QoS 1/2 messages dropped because the queue was full."""
    _next_id: int = 0

    def packet_id(self) -> int:
        while True:
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self.inflight:
                return self._next_id


class Connection:
    def __init__(self, broker: Broker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.broker = broker
        self.reader = reader
        self.writer = writer
        self.session: Session | None = None
        self.will: Message | None = None
        self.keepalive = 0

    def send(self, data: bytes) -> None:
        if self.writer.is_closing():
            return
        if self.writer.transport.get_write_buffer_size() > 2 * MAX_WRITE_BUFFER:
            log.warning("MQTT client %s is too far behind; disconnecting it", self.session and self.session.client_id)
            self.writer.transport.abort()
            return
        self.writer.write(data)

    def behind(self) -> bool:
        return self.writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER

    def publish(self, msg: Message, qos: int, packet_id: int, retain: bool, dup: bool = False) -> None:
        body = utf8(msg.topic) + (struct.pack("!H", packet_id) if qos else b"") + msg.payload
        self.send(packet(PUBLISH, (int(dup) << 3) | (qos << 1) | int(retain), body))

    def resend(self) -> None:
        """A resumed session: what was in flight goes again (PUBLISH with DUP, or PUBREL), then the queue."""
        assert self.session is not None
        for packet_id, out in self.session.inflight.items():
            if out.released:
                self.send(packet(PUBREL, 2, struct.pack("!H", packet_id)))
            else:
                self.publish(out.msg, out.qos, packet_id, out.retain, dup=True)
        self.fill()

    def fill(self) -> None:
        """Move queued messages into flight while the window has room."""
        session = self.session
        assert session is not None
        while session.queue and len(session.inflight) < self.broker.max_inflight and session.conn is self:
            out = session.queue.popleft()
            packet_id = session.packet_id()
            session.inflight[packet_id] = out
            self.publish(out.msg, out.qos, packet_id, out.retain)

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
                if self.session is None or self.session.conn is not self:
                    return  # taken over: whatever was still buffered is not this session's any more
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
            self.send(packet(CONNACK, 0, b"\x00\x01"))  # unacceptable protocol version (MQTT 5 included)
            return False
        flags, self.keepalive = r.u8(), r.u16()
        if flags & 0x01 or (flags >> 3) & 3 == 3 or (not flags & 0x04 and flags & 0x38):
            raise ProtocolError("malformed CONNECT flags")
        client_id = r.text()
        clean = bool(flags & 0x02)
        if flags & 0x04:
            topic, payload = r.text(), r.blob()
            if not topic or "+" in topic or "#" in topic:
                raise ProtocolError(f"cannot have a will on {topic!r}")
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
        if self.broker.users is not None and username is not None:
            client_id = username  # use_username_as_clientid: a login has one session, its own
        present = self.broker.attach(self, client_id, clean, username)
        self.send(packet(CONNACK, 0, bytes([int(present), 0])))
        self.resend()
        return True

    def handle(self, kind: int, flags: int, body: bytes) -> None:
        r = Reader(body)
        session = self.session
        assert session is not None
        if kind == PUBLISH:
            qos = (flags >> 1) & 3
            if qos == 3:
                raise ProtocolError("PUBLISH at QoS 3")
            topic = r.text()
            if not topic or "+" in topic or "#" in topic:
                raise ProtocolError(f"cannot publish to {topic!r}")
            packet_id = r.u16() if qos else 0
            msg = Message(topic, r.rest(), qos, bool(flags & 1))
            allowed = self.broker.may(session.username, "write", topic)
            if qos == 2:
                if packet_id not in session.incoming:  # a resend before PUBREL is the same message
                    session.incoming[packet_id] = msg if allowed else None
                self.send(packet(PUBREC, 0, struct.pack("!H", packet_id)))
                return
            if allowed:
                self.broker.route(msg)
            if qos == 1:
                self.send(packet(PUBACK, 0, struct.pack("!H", packet_id)))
        elif kind == PUBREL:
            packet_id = r.u16()
            held = session.incoming.pop(packet_id, None)
            if held is not None:
                self.broker.route(held)
            self.send(packet(PUBCOMP, 0, struct.pack("!H", packet_id)))
        elif kind == PUBACK:
            packet_id = r.u16()
            out = session.inflight.get(packet_id)
            if out is not None and out.qos == 1:
                del session.inflight[packet_id]
                self.fill()
        elif kind == PUBREC:
            packet_id = r.u16()
            out = session.inflight.get(packet_id)
            if out is not None and out.qos == 2:
                out.released = True
            self.send(packet(PUBREL, 2, struct.pack("!H", packet_id)))
        elif kind == PUBCOMP:
            packet_id = r.u16()
            out = session.inflight.get(packet_id)
            if out is not None and out.released:
                del session.inflight[packet_id]
                self.fill()
        elif kind == SUBSCRIBE:
            packet_id, granted, new = r.u16(), bytearray(), []
            while r.more():
                topic_filter, qos = r.text(), r.u8()
                if qos > 2:
                    raise ProtocolError("SUBSCRIBE at QoS 3")
                if valid_filter(topic_filter) and not topic_filter.startswith("$share/"):
                    granted.append(qos)
                    new.append((topic_filter, qos))
                else:
                    granted.append(0x80)  # includes shared subscriptions: not supported, so refused
            if not granted:
                raise ProtocolError("SUBSCRIBE without a filter")
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
        else:
            raise ProtocolError(f"unexpected packet type {kind}")


class Broker:
    """`async with Broker(host, port, users, acl) as broker:`; port 0 picks a free one.

    `users` maps login to password (None: anyone, with the client id they send); `acl` maps login
    to its (access, filter) rules as hub.credentials writes them for Mosquitto (None: no ACL)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, users: dict[str, str] | None = None,
                 acl: dict[str, list[Rule]] | None = None, max_queued: int = MAX_QUEUED,
                 max_inflight: int = MAX_INFLIGHT) -> None:
        self.host = host
        self.port = port
        self.users = users
        self.acl = acl
        self.max_queued = max_queued
        self.max_inflight = max_inflight
        self.sessions: dict[str, Session] = {}
        self.retained: dict[str, Message] = {}
        self._exact: dict[str, set[str]] = {}
        """topic -> client ids subscribed to exactly that topic (every device's own cmd topic)"""
        self._wild: dict[str, dict[str, int]] = {}
        """filter with wildcards -> {client id: qos}"""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.messages = 0
        self.dropped = 0
        """QoS 1/2 messages dropped because a session's queue was full."""
        self.dropped_qos0 = 0
        """QoS 0 messages not sent to a client too far behind."""

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

    def may(self, username: str | None, access: str, topic: str) -> bool:
        """The ACL's answer, matched as Mosquitto matches acl-file lines (a `#` rule hides `$` topics too)."""
        if self.acl is None:
            return True
        return any(a in (access, "readwrite") and matches(f, topic) for a, f in self.acl.get(username or "", ()))

    def attach(self, conn: Connection, client_id: str, clean: bool, username: str | None = None) -> bool:
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
            session = self.sessions[client_id] = Session(client_id, clean, username)
        session.conn = conn
        conn.session = session
        return present

    def disconnected(self, conn: Connection, clean_exit: bool) -> None:
        session = conn.session
        if session is None or session.conn is not conn:
            return
        session.conn = None
        if conn.will is not None and not clean_exit and self.may(session.username, "write", conn.will.topic):
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
                self.deliver(session, msg, qos, retain=True)

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
            self.deliver(self.sessions[client_id], msg, qos)

    def deliver(self, session: Session, msg: Message, qos: int, retain: bool = False) -> None:
        """Send now (QoS 0, or QoS 1/2 with room in flight) or queue; what the ACL denies is never sent."""
        if not self.may(session.username, "read", msg.topic):
            return
        qos, conn = min(qos, msg.qos), session.conn
        if qos == 0:
            if conn is None:
                return  # not queued for the absent, as Mosquitto's default
            if conn.behind():
                self.dropped_qos0 += 1
            else:
                conn.publish(msg, 0, 0, retain)
            return
        if len(session.queue) >= self.max_queued:
            session.dropped += 1
            self.dropped += 1
            if session.dropped in (1, 1000, 100_000):
                log.warning("MQTT session %s: queue full, %d messages dropped", session.client_id, session.dropped)
            return
        session.queue.append(Outgoing(msg, qos, retain))
        if conn is not None:
            conn.fill()
