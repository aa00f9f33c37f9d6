"""A bare MQTT 3.1.1 client over a socket, for what paho hides: withheld acknowledgements, DUP flags,
resent packet ids, return codes and a broker closing the connection."""

from __future__ import annotations

import socket
import struct


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


class Raw:
    def __init__(self, port: int, timeout: float = 5) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send(self, kind: int, flags: int, body: bytes) -> None:
        self.sock.sendall(bytes([(kind << 4) | flags]) + _varint(len(body)) + body)

    def read(self) -> tuple[int, int, bytes]:
        """(type, flags, body) of the next packet; raises ConnectionError when the broker has closed."""
        first = self._exactly(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._exactly(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first >> 4, first & 0x0F, self._exactly(length)

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed by the broker")
            data += chunk
        return data

    def connect(self, user: str | None, password: str | None, client_id: str = "", clean: bool = True,
                keepalive: int = 60, will: tuple[str, bytes] | None = None, level: int = 4) -> tuple[int, int]:
        """CONNECT; returns CONNACK's (session present, return code)."""
        flags = (0x02 if clean else 0) | (0x80 if user else 0) | (0x40 if password else 0) | (0x0C if will else 0)
        body = _str("MQTT") + bytes([level, flags]) + struct.pack("!H", keepalive) + _str(client_id)
        if will:
            body += _str(will[0]) + _str(will[1])
        if user:
            body += _str(user)
        if password:
            body += _str(password)
        if level == 5:
            body = body[:10] + b"\x00" + body[10:]  # an empty properties block after the keep-alive
        self.send(1, 0, body)
        kind, _, ack = self.read()
        assert kind == 2, kind
        return ack[0] & 1, ack[1]

    def subscribe(self, topic_filter: str, qos: int, packet_id: int = 1) -> int:
        self.send(8, 2, struct.pack("!H", packet_id) + _str(topic_filter) + bytes([qos]))
        kind, _, body = self.read()
        assert kind == 9 and body[:2] == struct.pack("!H", packet_id), (kind, body)
        return body[2]

    def publish(self, topic: str, payload: bytes, qos: int = 0, packet_id: int = 0, dup: bool = False,
                retain: bool = False) -> None:
        body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
        self.send(3, (int(dup) << 3) | (qos << 1) | int(retain), body)

    def next_publish(self) -> tuple[str, bytes, int, int, bool]:
        """(topic, payload, qos, packet id, dup) of the next PUBLISH, skipping nothing else silently."""
        kind, flags, body = self.read()
        assert kind == 3, kind
        n = struct.unpack_from("!H", body)[0]
        topic, rest = body[2:2 + n].decode(), body[2 + n:]
        qos = (flags >> 1) & 3
        packet_id = struct.unpack_from("!H", rest)[0] if qos else 0
        return topic, rest[2:] if qos else rest, qos, packet_id, bool(flags & 8)

    def ack(self, kind: int, packet_id: int) -> None:
        self.send(kind, 2 if kind == 6 else 0, struct.pack("!H", packet_id))

    def expect(self, kind: int, packet_id: int) -> None:
        got, _, body = self.read()
        assert (got, body[:2]) == (kind, struct.pack("!H", packet_id)), (got, body)

    def closed(self, within: float = 3) -> bool:
        """True if the broker closes the connection (sending nothing more) within `within` seconds."""
        self.sock.settimeout(within)
        try:
            return self.sock.recv(1) == b""
        except ConnectionError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()
