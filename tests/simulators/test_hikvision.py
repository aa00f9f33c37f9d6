"""The simulated Hikvision devices send what the adapter reads: every document maps to valid contract messages."""

from __future__ import annotations

import json
import random

import pytest

from adapters.hikvision import body, mapping
from devices import REGISTRY
from hub.ingest.decode import decode
from simulators import hikvision

pytestmark = pytest.mark.unit

NOW_MS = 1_795_305_483_000


def valid(mapped: mapping.Mapped, kind: str) -> None:
    assert mapped.kind in (kind, None)
    for message in mapped.messages:
        decode(REGISTRY[kind], message.channel, json.dumps(message.payload).encode())


def test_anpr_posts_map_to_passages_with_a_picture() -> None:
    rng = random.Random(3)
    kinds = set()
    for _ in range(300):
        raw, content_type = hikvision.post_of(hikvision.Login("gate", "lpr-1", "pw"), rng, NOW_MS, 1)
        parsed = body.parse_body(raw, content_type)
        mapped = mapping.map_document(parsed.document)
        valid(mapped, "gate")
        kinds.add(mapped.what)
        if mapped.what == "passage":
            assert [p.name for p in parsed.pictures] == ["licensePlatePicture.jpg"]
            assert not mapped.messages[0].payload["plate"].startswith(("蓝", "黄", "绿"))
    assert kinds == {"passage", "heartbeat"}


def test_acs_posts_map_to_access_events_and_faults() -> None:
    rng = random.Random(4)
    seen = set()
    for serial in range(2000):
        raw, content_type = hikvision.post_of(hikvision.Login("access", "acs-1", "pw"), rng, NOW_MS, serial)
        mapped = mapping.map_document(body.parse_body(raw, content_type).document)
        valid(mapped, "access")
        seen.add(mapped.what)
    assert {"access", "fault", "heartbeat"} <= seen


def test_history_flag() -> None:
    doc = body.parse_xml(hikvision.anpr_xml(random.Random(1), NOW_MS, history=True))
    assert mapping.map_document(doc).messages[0].payload["replayed"] is True


@pytest.mark.parametrize("text", ["gate/lpr-1", "lpr-1:pw", "meter/m-1:pw", "gate/:pw", "gate/lpr-1:"])
def test_bad_logins(text: str) -> None:
    with pytest.raises(ValueError):
        hikvision.Login.parse(text)


def test_login() -> None:
    assert hikvision.Login.parse("access/acs-1:a:b") == hikvision.Login("access", "acs-1", "a:b")
