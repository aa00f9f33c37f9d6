"""Simulated Hikvision devices: ANPR lane cameras and access terminals posting ISAPI pushes to a hub.

`smarthub simulate --vendor hikvision --hub-url URL --login gate/lpr-1:PASSWORD --login access/acs-1:PASSWORD` posts
what these devices send to their HTTP listening host: `EventNotificationAlert` ANPR XML in `multipart/form-data`
with a plate picture (the colour word before the plate, as Chinese firmware writes it), `AccessControllerEvent`
JSON with major/minor codes and a rising `serialNo`, and heartbeats; now and then a post is sent twice (a device
retrying after a lost answer). The documents are built by pure functions (tested against the adapter's mapping);
`run` is the thin loop that posts them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from xml.etree.ElementTree import Element, SubElement, tostring

import httpx

from simulators.plates import plate

ISAPI_NS = "http://www.isapi.org/ver20/XMLSchema"
BEIJING = timezone(timedelta(hours=8))
COLOUR_WORDS = {"blue": "蓝", "yellow": "黄", "green": "绿"}
VEHICLE_TYPES = ["SUVMPV", "vehicle", "smallCar", "truck", "largeBus", "van"]
GRANTED = [(5, 0x4B)] * 7 + [(5, 0x01)] * 2 + [(5, 0x9C)]
"""Face, card, QR passes (major, minor) as access terminals send them."""
DENIED = [(5, 0x4C), (5, 0x08), (5, 0x09), (5, 0x07), (5, 0x0A)]
FAULTS = [(5, 0x1B), (5, 0x1C), (5, 0x85), (1, 0x404)]
BOUNDARY = "boundary"
PICTURE = b"\xff\xd8\xff\xe0" + bytes(1024) + b"\xff\xd9"
"""A stand-in JPEG (start and end markers around zeros): a simulated plate snapshot."""


def _date_time(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(BEIJING).isoformat(timespec="seconds")


def anpr_xml(rng: random.Random, now_ms: int, channel: int = 1, history: bool = False) -> bytes:
    """An ANPR `EventNotificationAlert` as a lane camera posts it."""
    vehicle = rng.choice(VEHICLE_TYPES)
    number, colour = plate(rng, vehicle_class="truck" if vehicle in ("truck", "largeBus") else "car")
    root = Element("EventNotificationAlert", {"version": "2.0", "xmlns": ISAPI_NS})
    for name, value in (("ipAddress", f"10.10.10.{100 + channel}"), ("portNo", "80"), ("protocol", "HTTP"),
                        ("channelID", str(channel)), ("dateTime", _date_time(now_ms)), ("activePostCount", "1"),
                        ("eventType", "ANPR"), ("eventState", "active"), ("eventDescription", "ANPR")):
        SubElement(root, name).text = value
    anpr = SubElement(root, "ANPR")
    no_plate = rng.random() < 0.02
    for name, value in (("country", "CN"), ("licensePlate", "无车牌" if no_plate else COLOUR_WORDS[colour] + number),
                        ("line", str(channel)), ("direction", rng.choice(["forward", "reverse"])),
                        ("confidenceLevel", str(0 if no_plate else rng.randint(70, 99))),
                        ("plateColor", "unknown" if no_plate else colour), ("vehicleType", vehicle),
                        ("alarmDataType", "1" if history else "0"),
                        ("vehicleListName", rng.choice(["allowList"] * 8 + ["otherList", "blockList"]))):
        SubElement(anpr, name).text = value
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="utf-8", xml_declaration=False)


def acs_json(rng: random.Random, now_ms: int, serial: int) -> bytes:
    """An `AccessControllerEvent` as a face terminal posts it: mostly passes, some refusals, rare alarms."""
    roll = rng.random()
    major, minor = rng.choice(GRANTED if roll < 0.93 else DENIED if roll < 0.99 else FAULTS)
    event: dict[str, object] = {"deviceName": "Access Controller", "majorEventType": major, "subEventType": minor,
                                "serialNo": serial, "currentVerifyMode": "cardOrFace", "cardReaderNo": 1,
                                "doorNo": 1}
    if (major, minor) in GRANTED or rng.random() < 0.5:
        event["employeeNoString"] = f"p-{rng.getrandbits(16):04x}"
    return json.dumps({"ipAddress": "172.6.64.7", "portNo": 80, "protocol": "HTTP", "channelID": 1,
                       "dateTime": _date_time(now_ms), "activePostCount": 1, "eventType": "AccessControllerEvent",
                       "eventState": "active", "eventDescription": "Access Controller Event",
                       "AccessControllerEvent": event}).encode()


def heartbeat_json(now_ms: int) -> bytes:
    return json.dumps({"ipAddress": "172.6.64.7", "dateTime": _date_time(now_ms), "activePostCount": 0,
                       "eventType": "heartBeat", "eventState": "active", "eventDescription": "heartBeat"}).encode()


def multipart(document: bytes, document_name: str, document_type: str, picture: bytes | None
              ) -> tuple[bytes, str]:
    """A Hikvision-style multipart post: the event part, then the picture part."""
    parts = [(document_name, document_type, document)] + ([("licensePlatePicture.jpg", "image/jpeg", picture)]
                                                          if picture is not None else [])
    out = b""
    for name, content_type, data in parts:
        out += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'
                f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


@dataclass(frozen=True, slots=True)
class Login:
    """`KIND/DEVICE:PASSWORD` as given on the command line."""

    kind: str
    device: str
    password: str

    @classmethod
    def parse(cls, text: str) -> Login:
        who, sep, password = text.partition(":")
        kind, slash, device = who.partition("/")
        if not sep or not slash or kind not in ("gate", "access") or not device or not password:
            raise ValueError(f"--login {text!r}: expected gate/DEVICE:PASSWORD or access/DEVICE:PASSWORD")
        return cls(kind, device, password)


@dataclass
class PushStats:
    sent: int = 0
    answered: dict[int, int] = field(default_factory=dict)


def post_of(login: Login, rng: random.Random, now_ms: int, serial: int) -> tuple[bytes, str]:
    """The next post of one device (body, content type)."""
    if rng.random() < 0.1:
        return heartbeat_json(now_ms), "application/json"
    if login.kind == "gate":
        return multipart(anpr_xml(rng, now_ms), "anpr.xml", 'text/xml; charset="UTF-8"', PICTURE)
    return acs_json(rng, now_ms, serial), "application/json"


async def run(client: httpx.AsyncClient, site: str, logins: list[Login], rate_per_s: float, duration_s: float,
              seed: int = 1, digest: bool = False) -> PushStats:
    """Post at about `rate_per_s` across the devices for `duration_s` (wall clock); 2% of posts are sent twice.
    With `digest` each device logs in with HTTP Digest as the real ones do (challenge once, then its nonce again
    with the next count), else with Basic."""
    rng = random.Random(seed)
    stats = PushStats()
    serials = {login.device: rng.randint(1, 10_000) for login in logins}
    digests = {login.device: httpx.DigestAuth(login.device, login.password) for login in logins} if digest else {}
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        login = rng.choice(logins)
        serials[login.device] += 1
        content, content_type = post_of(login, rng, int(time.time() * 1000), serials[login.device])
        headers = {"Content-Type": content_type}
        if not digest:
            token = base64.b64encode(f"{login.device}:{login.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        auth = digests.get(login.device, httpx.USE_CLIENT_DEFAULT)
        for _ in range(2 if rng.random() < 0.02 else 1):
            answer = await client.post(f"/push/hikvision/{site}/{login.device}", content=content, headers=headers,
                                       auth=auth)
            stats.sent += 1
            stats.answered[answer.status_code] = stats.answered.get(answer.status_code, 0) + 1
        await asyncio.sleep(rng.expovariate(rate_per_s) if rate_per_s > 0 else 0)
    return stats
