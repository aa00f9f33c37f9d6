"""Reading what a device posts: XML (defused), JSON, multipart with pictures; hostile bodies refused or cut."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from adapters.hikvision import body
from adapters.hikvision.body import Unreadable

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


def multipart(parts: list[tuple[str, str, bytes]], boundary: str = "boundary") -> tuple[bytes, str]:
    """A multipart/form-data body as a Hikvision camera writes it (a name and filename per part)."""
    out = b""
    for name, content_type, data in parts:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_xml_namespaces_are_dropped() -> None:
    doc = body.parse_body((FIXTURES / "anpr.xml").read_bytes(), "application/xml").document
    alert = doc["EventNotificationAlert"]
    assert alert["ANPR"]["licensePlate"] == "蓝琼A12345"
    assert alert["ANPR"]["pictureInfoList"]["pictureInfo"]["type"] == "licensePlatePicture"


def test_repeated_elements_become_a_list() -> None:
    doc = body.parse_xml(b"<a><p><n>1</n></p><p><n>2</n></p><p><n>3</n></p></a>")
    assert doc == {"a": {"p": [{"n": "1"}, {"n": "2"}, {"n": "3"}]}}


def test_an_xml_bomb_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(Unreadable, match="DTD"):
        body.parse_body((FIXTURES / "bomb.xml").read_bytes(), "text/xml")
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("raw", [
    b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
    b'<?xml version="1.0"?><!DOCTYPE a SYSTEM "http://example.invalid/a.dtd"><a/>',
])
def test_external_entities_are_refused(raw: bytes) -> None:
    with pytest.raises(Unreadable):
        body.parse_xml(raw)


@pytest.mark.parametrize(("raw", "content_type"), [
    (b"<a><b>", "application/xml"), (b"{not json", "application/json"), (b"[1, 2]", "application/json"),
    (b"hello", "text/plain"), (b"", ""), (b"\xff\xfe\x00", "application/json"),
    (b"<a>" * 100 + b"</a>" * 100, "application/xml"), (b'{"a":' * 100 + b"1" + b"}" * 100, "application/json"),
    (b"<a>" + b"x" * (body.MAX_DOCUMENT_BYTES + 1) + b"</a>", "application/xml"),
])
def test_unreadable_bodies(raw: bytes, content_type: str) -> None:
    with pytest.raises(Unreadable):
        body.parse_body(raw, content_type)


def test_json_is_sniffed_when_mislabelled() -> None:
    assert body.parse_body(b'{"eventType": "heartBeat"}', "text/plain").document == {"eventType": "heartBeat"}


def test_multipart_with_a_picture() -> None:
    raw, content_type = multipart([("anpr.xml", 'text/xml; charset="UTF-8"', (FIXTURES / "anpr.xml").read_bytes()),
                                   ("licensePlatePicture.jpg", "image/pjpeg", JPEG)])
    parsed = body.parse_body(raw, content_type)
    assert parsed.document["EventNotificationAlert"]["eventType"] == "ANPR"
    assert parsed.pictures == [body.Picture("licensePlatePicture.jpg", "image/pjpeg", JPEG)]
    assert parsed.raw == (FIXTURES / "anpr.xml").read_bytes()
    assert parsed.cut == []


def test_an_empty_picture_part_is_skipped() -> None:
    """The capture the fixtures cite sends `Content-Length: 0` for a picture it has not got."""
    raw, content_type = multipart([("anpr.xml", "text/xml", (FIXTURES / "anpr.xml").read_bytes()),
                                   ("licensePlatePicture.jpg", "image/pjpeg", b"")])
    assert body.parse_body(raw, content_type).pictures == []


def test_an_oversized_picture_is_cut_and_the_event_kept() -> None:
    huge = b"\xff" * (body.MAX_PICTURE_BYTES + 1)
    raw, content_type = multipart([("AccessControllerEvent", "application/json",
                                    (FIXTURES / "acs_face_granted.json").read_bytes()),
                                   ("Picture", "image/jpeg", huge), ("Picture2", "image/jpeg", JPEG)])
    parsed = body.parse_body(raw, content_type)
    assert parsed.cut == ["Picture"]
    assert [p.name for p in parsed.pictures] == ["Picture2"]
    assert parsed.document["AccessControllerEvent"]["serialNo"] == 5310


def test_parts_past_the_limit_are_ignored() -> None:
    parts = [("anpr.xml", "text/xml", (FIXTURES / "anpr.xml").read_bytes())]
    parts += [(f"p{i}.jpg", "image/jpeg", JPEG) for i in range(body.MAX_PARTS * 4)]
    raw, content_type = multipart(parts)
    assert len(body.parse_body(raw, content_type).pictures) == body.MAX_PARTS - 1


@pytest.mark.parametrize(("raw", "content_type"), [
    (b"--b\r\n\r\n", "multipart/form-data"),  # no boundary declared
    (multipart([("Picture", "image/jpeg", JPEG)])),  # no event part
    (multipart([("anpr.xml", "text/xml", (FIXTURES / "bomb.xml").read_bytes())])),  # a bomb inside a part
])
def test_unreadable_multiparts(raw: bytes, content_type: str) -> None:
    with pytest.raises(Unreadable):
        body.parse_body(raw, content_type)
