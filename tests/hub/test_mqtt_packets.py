"""The hub's MQTT packet reader and encoders, on byte strings built here to the MQTT 3.1.1 and 5 specs."""

from __future__ import annotations

import struct

import pytest

from hub import mqtt_packets as mp

pytestmark = pytest.mark.unit


def length_bytes(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: str, payload: bytes, qos: int = 0, mid: int = 0, retain: bool = False, dup: bool = False,
            props: bytes | None = None) -> bytes:
    """PUBLISH as a broker sends it; `props` (MQTT 5) is the encoded property block after its length."""
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + (struct.pack("!H", mid) if qos else b"")
    if props is not None:
        body += length_bytes(len(props)) + props
    body += payload
    return bytes([0x30 | (qos << 1) | int(retain) | (8 if dup else 0)]) + length_bytes(len(body)) + body


def test_decodes_qos0_qos1_retain_dup_and_long_payloads_in_order() -> None:
    reader = mp.Reader()
    big = b"x" * 20_000  # three length bytes
    others = reader.feed(publish("c/小区/gate/g1/event", b"{}", qos=1, mid=513)
                         + publish("c/s/gate/g1/state", b'{"online":true}', retain=True)
                         + publish("c/s/e/1/telemetry", big, qos=1, mid=2, dup=True))
    assert others == []
    assert reader.messages == [("c/小区/gate/g1/event", b"{}", False, 513, False),
                               ("c/s/gate/g1/state", b'{"online":true}', True, 0, False),
                               ("c/s/e/1/telemetry", big, False, 2, True)]
    assert reader.to_ack == [513, 2]  # only QoS 1, in arrival order (section 4.6)


def test_a_packet_cut_anywhere_is_completed_by_the_next_chunk() -> None:
    stream = (publish("c/s/e/1/telemetry", b'{"floor": 3}', qos=1, mid=9) + b"\xd0\x00"
              + publish("c/s/e/1/telemetry", b"y" * 200, qos=1, mid=10))
    whole = mp.Reader()
    whole_controls = whole.feed(stream)
    for cut in range(1, len(stream)):
        reader = mp.Reader()
        controls = reader.feed(stream[:cut]) + reader.feed(stream[cut:])
        assert (reader.messages, reader.to_ack, controls) == (whole.messages, whole.to_ack, whole_controls), cut


def test_mqtt5_publish_properties_are_skipped() -> None:
    reader = mp.Reader(mp.V5)
    props = b"\x01\x01" + b"\x03\x00\x10application/json"  # payload format indicator, content type
    reader.feed(publish("c/s/e/1/telemetry", b'{"a":1}', qos=1, mid=4, props=props)
                + publish("c/s/e/1/state", b"{}", props=b""))
    assert reader.messages == [("c/s/e/1/telemetry", b'{"a":1}', False, 4, False),
                               ("c/s/e/1/state", b"{}", False, 0, False)]


def test_control_packets() -> None:
    reader = mp.Reader()
    assert reader.feed(b"\x20\x02\x01\x00" + b"\x90\x04\x00\x07\x01\x80" + b"\xd0\x00" + b"\x40\x02\x00\x05") == [
        mp.ConnAck(session_present=True, code=0), mp.Ack(mp.Packet.SUBACK, 7, (1, 0x80)),
        mp.Control(mp.Packet.PINGRESP), mp.Ack(mp.Packet.PUBACK, 5, (0,))]
    assert mp.Reader().feed(b"\x20\x02\x00\x05") == [mp.ConnAck(False, 5)]
    assert mp.reason_text(5, mp.V311) == "not authorized"


def test_mqtt5_control_packets_carry_reasons_and_server_keepalive() -> None:
    reason = b"\x1f\x00\x04busy"
    connack_props = b"\x13\x00\x3c" + b"\x21\x00\x14" + b"\x26\x00\x01k\x00\x01v"  # keepalive 60, receive max, user
    packets = (b"\x20" + length_bytes(3 + len(connack_props)) + b"\x00\x00" + length_bytes(len(connack_props))
               + connack_props
               + b"\x90\x05\x00\x03\x00\x01\x87"  # SUBACK: no properties, QoS 1 granted, then not authorized
               + b"\x40\x03\x00\x09\x87"  # PUBACK with a reason code
               + b"\xe0" + length_bytes(2 + len(reason)) + b"\x8b" + length_bytes(len(reason)) + reason)
    assert mp.Reader(mp.V5).feed(packets) == [
        mp.ConnAck(False, 0, keepalive_s=60), mp.Ack(mp.Packet.SUBACK, 3, (1, 0x87)),
        mp.Ack(mp.Packet.PUBACK, 9, (0x87,)), mp.Control(mp.Packet.DISCONNECT, 0x8B, "busy")]
    assert mp.reason_text(0x8B, mp.V5) == "server shutting down (0x8b)"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (publish("c/s/g/1/event", b"{}", qos=2, mid=7), "QoS 2"),  # we subscribe at QoS 1 only
        (publish("c/s/g/1/event", b"{}", qos=1, mid=0), "packet id 0"),
        (b"\x30\xff\xff\xff\xff\x01", "longer than 4 bytes"),
        (b"\x30\x05\x00\x09abc", "run past"),  # topic length beyond the packet
        (b"\xf0\x00", "unexpected AUTH"),
        (b"\x60\x02\x00\x01", "unexpected PUBREL"),
    ],
)
def test_what_the_hub_cannot_accept_is_a_protocol_error(data: bytes, error: str) -> None:
    with pytest.raises(mp.ProtocolError, match=error):
        mp.Reader().feed(data)


def test_encoders_follow_the_spec() -> None:
    connect = mp.connect("hub-1", keepalive_s=30, username="hub", password="pw")
    assert connect == (b"\x10" + length_bytes(26) + b"\x00\x04MQTT\x04\xc0\x00\x1e" + b"\x00\x05hub-1"
                       + b"\x00\x03hub" + b"\x00\x02pw")  # clean session off: the broker keeps our session
    v5 = mp.connect("h", protocol=mp.V5, session_expiry_s=3600, receive_maximum=100)
    assert v5[2:10] == b"\x00\x04MQTT\x05\x00" and b"\x08\x11\x00\x00\x0e\x10\x21\x00\x64" in v5
    assert mp.subscribe(1, ["a/#", "b/+"]) == b"\x82\x0e\x00\x01\x00\x03a/#\x01\x00\x03b/+\x01"
    assert mp.subscribe(2, ["a"], mp.V5) == b"\x82\x07\x00\x02\x00\x00\x01a\x01"
    assert mp.publish("a/b", b"hi", qos=1, retain=True, packet_id=3) == b"\x33\x09\x00\x03a/b\x00\x03hi"
    assert mp.puback(513) == b"\x40\x02\x02\x01"
    reader = mp.Reader()
    reader.feed(mp.publish("a/b", b"hi", qos=1, packet_id=3, dup=True))
    assert reader.messages == [("a/b", b"hi", False, 3, True)]
