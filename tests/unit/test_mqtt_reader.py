"""The hub's own decoding of PUBLISH packets, on byte strings built to the MQTT 3.1.1 spec."""

from __future__ import annotations

import asyncio
import struct

import paho.mqtt.client as paho
import pytest

from hub.mqtt import BufferedReads


def publish(topic: str, payload: bytes, qos: int = 0, mid: int = 0, retain: bool = False) -> bytes:
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + (struct.pack("!H", mid) if qos else b"") + payload
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([0x30 | (qos << 1) | int(retain)]) + bytes(encoded) + body


@pytest.fixture
def reader() -> tuple[BufferedReads, list[tuple[str, bytes, bool]]]:
    got: list[tuple[str, bytes, bool]] = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    return BufferedReads(client, asyncio.new_event_loop(), lambda *m: got.append(m)), got


def feed(r: BufferedReads, data: bytes) -> None:
    r._buf, r._pos = data, 0


def test_decodes_qos0_qos1_retain_and_long_payloads(reader) -> None:  # type: ignore[no-untyped-def]
    r, got = reader
    big = b"x" * 20_000  # three length bytes
    feed(r, publish("c/小区/gate/g1/event", b"{}", qos=1, mid=513)
         + publish("c/s/gate/g1/state", b'{"online":true}', retain=True) + publish("c/s/e/1/telemetry", big))
    assert r._fast_publish() and r._fast_publish() and r._fast_publish()
    assert got == [("c/小区/gate/g1/event", b"{}", False), ("c/s/gate/g1/state", b'{"online":true}', True),
                   ("c/s/e/1/telemetry", big, False)]
    assert r._acks == [b"\x40\x02\x02\x01"]  # PUBACK for packet id 513, only for the QoS 1 message
    assert r._pos == len(r._buf)


@pytest.mark.parametrize(
    "data",
    [
        publish("c/s/g/1/event", b"{}", qos=1, mid=7)[:-1],  # cut by the buffer's end
        publish("c/s/g/1/event", b"x" * 300)[:2],  # cut inside the length bytes
        publish("c/s/g/1/event", b"{}", qos=2, mid=7),  # QoS 2 needs paho's handshake
        b"\xd0\x00",  # PINGRESP
        b"\x90\x03\x00\x01\x01",  # SUBACK
    ],
)
def test_leaves_everything_else_to_paho(reader, data: bytes) -> None:  # type: ignore[no-untyped-def]
    r, got = reader
    feed(r, data)
    assert r._fast_publish() is False
    assert got == [] and r._pos == 0 and r._acks == []


def test_mqtt5_is_left_to_paho() -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    assert BufferedReads(client, asyncio.new_event_loop(), lambda *m: None)._on_publish is None
