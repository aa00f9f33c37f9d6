"""MQTT 3.1.1 and 5 packets as the hub's own connection uses them: encoders and a stream reader. Pure.

The hub is one kind of client: it connects with a persistent session,
subscribes at QoS 1, receives PUBLISH, acknowledges it, publishes alerts and
commands at QoS 0/1, and pings. That is all this module speaks; anything else
a broker sends (QoS 2 to a QoS 1 subscription, AUTH, a malformed length) is a
`ProtocolError`, which ends the connection and so makes the edge reconnect.

References: MQTT 3.1.1 (OASIS, 2014) sections 2-3; MQTT 5.0 (OASIS, 2019)
sections 2-3. Section numbers below are 3.1.1's unless marked v5.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

V311 = 4
"""Protocol level byte of MQTT 3.1.1."""
V5 = 5

MAX_REMAINING_LENGTH = 268_435_455
"""Four length bytes at most (section 2.2.3)."""

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class ProtocolError(Exception):
    """The broker sent something this client cannot accept; the connection must end."""


class Packet(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


CONNACK_311 = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
"""MQTT 3.1.1 CONNACK return codes (section 3.2.2.3)."""

REASONS_5 = {
    0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error",
    0x83: "implementation specific error", 0x84: "unsupported protocol version",
    0x85: "client identifier not valid", 0x86: "bad user name or password", 0x87: "not authorized",
    0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned", 0x8B: "server shutting down",
    0x8C: "bad authentication method", 0x8D: "keep alive timeout", 0x8E: "session taken over",
    0x8F: "topic filter invalid", 0x90: "topic name invalid", 0x93: "receive maximum exceeded",
    0x95: "packet too large", 0x97: "quota exceeded", 0x9C: "use another server", 0x9D: "server moved",
    0x9F: "connection rate exceeded",
}
"""MQTT 5 reason codes a broker may end a connect, subscribe, publish or connection with (v5 2.4)."""


def reason_text(code: int, protocol: int) -> str:
    if protocol == V311:
        return CONNACK_311.get(code, f"return code {code}")
    return f"{REASONS_5.get(code, 'reason')} (0x{code:02x})"


def varint(n: int) -> bytes:
    """A Variable Byte Integer (section 2.2.3): remaining lengths, MQTT 5 property lengths."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    if len(data) > 0xFFFF:
        raise ValueError("an MQTT string is at most 65,535 bytes")
    return _U16.pack(len(data)) + data


def _packet(first: int, body: bytes) -> bytes:
    if len(body) > MAX_REMAINING_LENGTH:
        raise ValueError("packet too large for MQTT")
    return bytes((first,)) + varint(len(body)) + body


def connect(
    client_id: str,
    *,
    protocol: int = V311,
    keepalive_s: int = 30,
    username: str | None = None,
    password: str | None = None,
    session_expiry_s: int = 0,
    receive_maximum: int = 65_535,
) -> bytes:
    """CONNECT asking the broker to keep our session (clean session/start off, section 3.1.2.4)."""
    flags = 0x00  # clean session 0: the broker keeps subscriptions and queues QoS 1 while we are away
    payload = _string(client_id)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
    if password is not None:
        flags |= 0x40
        payload += _string(password)
    header = _string("MQTT") + bytes((protocol, flags)) + _U16.pack(keepalive_s)
    if protocol == V5:
        # Session Expiry Interval (0x11): 0 would end the session at disconnect (v5 3.1.2.11.2).
        props = b"\x11" + _U32.pack(session_expiry_s) + b"\x21" + _U16.pack(receive_maximum)
        header += varint(len(props)) + props
    return _packet(0x10, header + payload)


def subscribe(packet_id: int, filters: list[str], protocol: int = V311, qos: int = 1) -> bytes:
    body = _U16.pack(packet_id) + (b"\x00" if protocol == V5 else b"")
    for topic_filter in filters:
        body += _string(topic_filter) + bytes((qos,))
    return _packet(0x82, body)  # the reserved flags of SUBSCRIBE are 0010 (section 3.8.1)


def publish(topic: str, payload: bytes, *, qos: int = 0, retain: bool = False, packet_id: int = 0,
            dup: bool = False, protocol: int = V311) -> bytes:
    first = 0x30 | (qos << 1) | int(retain) | (0x08 if dup else 0)
    body = _string(topic) + (_U16.pack(packet_id) if qos else b"") + (b"\x00" if protocol == V5 else b"")
    return _packet(first, body + payload)


def puback(packet_id: int) -> bytes:
    """PUBACK; the same four bytes are valid in MQTT 5 (reason 0x00 may be left out, v5 3.4.2.1)."""
    return b"\x40\x02" + _U16.pack(packet_id)


PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"
"""Normal disconnection on both versions (v5: reason 0x00 may be left out)."""


@dataclass(frozen=True, slots=True)
class ConnAck:
    session_present: bool
    code: int
    """0 on success; 3.1.1 return code or MQTT 5 reason code otherwise."""
    keepalive_s: int | None = None
    """MQTT 5 Server Keep Alive: the broker's keepalive replaces ours when it sends one."""
    reason: str | None = None
    """MQTT 5 Reason String, for the log."""


@dataclass(frozen=True, slots=True)
class Ack:
    """SUBACK (codes per filter) or a PUBACK for one of our publishes (one code)."""

    kind: Packet
    packet_id: int
    codes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Control:
    """PINGRESP, or a DISCONNECT from an MQTT 5 broker with its reason."""

    kind: Packet
    code: int = 0
    reason: str | None = None


# MQTT 5 property identifiers and how their values are encoded (v5 2.2.2.2).
_BYTE, _TWO, _FOUR, _VAR, _STR, _BIN, _PAIR = range(7)
_PROPERTY_TYPES = {
    0x01: _BYTE, 0x02: _FOUR, 0x03: _STR, 0x08: _STR, 0x09: _BIN, 0x0B: _VAR, 0x11: _FOUR, 0x12: _STR,
    0x13: _TWO, 0x15: _STR, 0x16: _BIN, 0x17: _BYTE, 0x18: _FOUR, 0x19: _BYTE, 0x1A: _STR, 0x1C: _STR,
    0x1F: _STR, 0x21: _TWO, 0x22: _TWO, 0x23: _TWO, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _FOUR,
    0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 21:
            raise ProtocolError("malformed variable byte integer")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def _properties(data: bytes, pos: int, end: int) -> tuple[dict[int, object], int]:
    """MQTT 5 properties at `pos`: ({id: value}, position after them). User properties are skipped."""
    length, pos = _read_varint(data, pos, end)
    stop = pos + length
    if stop > end:
        raise ProtocolError("properties run past the packet")
    props: dict[int, object] = {}
    while pos < stop:
        ident = data[pos]
        kind = _PROPERTY_TYPES.get(ident)
        pos += 1
        value: object
        if kind == _BYTE:
            value, pos = data[pos], pos + 1
        elif kind == _TWO:
            (value,), pos = _U16.unpack_from(data, pos), pos + 2
        elif kind == _FOUR:
            (value,), pos = _U32.unpack_from(data, pos), pos + 4
        elif kind == _VAR:
            value, pos = _read_varint(data, pos, stop)
        elif kind in (_STR, _BIN):
            (n,) = _U16.unpack_from(data, pos)
            value, pos = bytes(data[pos + 2:pos + 2 + n]), pos + 2 + n
        elif kind == _PAIR:
            for _ in range(2):
                (n,) = _U16.unpack_from(data, pos)
                pos += 2 + n
            continue
        else:
            raise ProtocolError(f"unknown MQTT 5 property 0x{ident:02x}")
        props[ident] = value
    if pos != stop:
        raise ProtocolError("properties do not end where their length says")
    return props, stop


def _reason_string(props: dict[int, object]) -> str | None:
    value = props.get(0x1F)
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else None


Received = tuple[str, bytes, bool, int, bool]
"""A PUBLISH from the broker: (topic, payload, retain, packet id (0 at QoS 0), dup)."""


@dataclass(slots=True)
class Reader:
    """Splits the byte stream from the broker into packets, keeping a cut packet for the next chunk.

    `feed(data)` appends every complete PUBLISH to `messages` and the packet id
    of each QoS 1 one to `to_ack` (both in arrival order: PUBACKs must follow
    it, section 4.6), and returns the other packets. PUBLISH is decoded inline
    with a few slices: it is nearly all the traffic, thousands a second.
    """

    protocol: int = V311
    messages: list[Received] = field(default_factory=list)
    to_ack: list[int] = field(default_factory=list)
    _rest: bytes = b""

    def feed(self, data: bytes) -> list[ConnAck | Ack | Control]:
        if self._rest:
            data, self._rest = self._rest + data, b""
        others: list[ConnAck | Ack | Control] = []
        messages, to_ack, v5 = self.messages, self.to_ack, self.protocol == V5
        end, pos = len(data), 0
        while pos < end:
            first = data[pos]
            length, shift, i = 0, 0, pos + 1
            while True:  # remaining length: 1 to 4 bytes, 7 bits each (section 2.2.3)
                if i >= end:
                    self._rest = data[pos:]
                    return others
                byte = data[i]
                length |= (byte & 0x7F) << shift
                i += 1
                if not byte & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise ProtocolError("remaining length longer than 4 bytes")
            stop = i + length
            if stop > end:
                self._rest = data[pos:]
                return others
            if first & 0xF0 == 0x30:
                qos = (first >> 1) & 3
                if length < 2:
                    raise ProtocolError("PUBLISH shorter than its topic length")
                topic_end = i + 2 + ((data[i] << 8) | data[i + 1])
                if qos:
                    if qos != 1:
                        raise ProtocolError(f"PUBLISH at QoS {qos} on a QoS 1 subscription")
                    if topic_end + 2 > stop:
                        raise ProtocolError("PUBLISH ends inside its packet id")
                    packet_id = (data[topic_end] << 8) | data[topic_end + 1]
                    if not packet_id:
                        raise ProtocolError("QoS 1 PUBLISH with packet id 0")
                    to_ack.append(packet_id)
                    body = topic_end + 2
                else:
                    packet_id, body = 0, topic_end
                if v5:
                    props_len, body = _read_varint(data, body, stop)
                    body += props_len
                if body > stop:
                    raise ProtocolError("PUBLISH topic or properties run past the packet")
                topic = data[i + 2:topic_end].decode("utf-8", "surrogateescape")
                messages.append((topic, data[body:stop], bool(first & 1), packet_id, bool(first & 0x08)))
            else:
                others.append(self._control(first, data, i, stop))
            pos = stop
        return others

    def _control(self, first: int, data: bytes, pos: int, stop: int) -> ConnAck | Ack | Control:
        kind = first >> 4
        v5 = self.protocol == V5
        if kind == Packet.CONNACK:
            if stop - pos < 2:
                raise ProtocolError("CONNACK too short")
            props: dict[int, object] = {}
            if v5 and stop - pos > 2:
                props, _ = _properties(data, pos + 2, stop)
            keepalive = props.get(0x13)
            return ConnAck(bool(data[pos] & 1), data[pos + 1],
                           keepalive if isinstance(keepalive, int) else None, _reason_string(props))
        if kind in (Packet.SUBACK, Packet.PUBACK):
            if stop - pos < 2:
                raise ProtocolError(f"{Packet(kind).name} too short")
            (packet_id,) = _U16.unpack_from(data, pos)
            codes_at = pos + 2
            if kind == Packet.SUBACK:
                if v5:
                    _, codes_at = _properties(data, codes_at, stop)
                return Ack(Packet.SUBACK, packet_id, tuple(data[codes_at:stop]))
            return Ack(Packet.PUBACK, packet_id, (data[codes_at],) if v5 and stop > codes_at else (0,))
        if kind == Packet.PINGRESP:
            return Control(Packet.PINGRESP)
        if kind == Packet.DISCONNECT and v5:
            code = data[pos] if stop > pos else 0
            props = _properties(data, pos + 1, stop)[0] if stop > pos + 1 else {}
            return Control(Packet.DISCONNECT, code, _reason_string(props))
        name = Packet(kind).name if 0 < kind < 16 else str(kind)
        raise ProtocolError(f"unexpected {name} packet from the broker")
