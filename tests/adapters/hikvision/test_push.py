"""Hikvision ISAPI pushes against a running hub (real Mosquitto, each store): as the devices post them, with HTTP
Basic or Digest; what they say must come out as gate and access events exactly like an MQTT device's."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from adapters.hikvision import body, digest
from adapters.hikvision.push import Push
from hub.api import create_app
from hub.config import Settings
from hub.storage.base import EventQuery
from tests.adapters.hikvision.test_body import JPEG, multipart
from tests.support.hub_fixtures import HubRun, eventually, running_hub
from tests.support.mqtt_fixtures import Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]

FIXTURES = Path(__file__).parent / "fixtures"
CAMERA, TERMINAL = "lpr-east-1", "acs-b3-1"
WHEN = (datetime.now(UTC) - timedelta(minutes=1)).astimezone(timezone(timedelta(hours=8))).isoformat("T", "seconds")
"""The fixtures' times moved to a minute ago (Beijing time, as the devices write it), inside every store's
retention and the hub's clock check."""
_STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00")


def load(name: str) -> bytes:
    return _STAMP.sub(WHEN.encode(), (FIXTURES / name).read_bytes())


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@dataclass
class Devices:
    run: HubRun
    client: httpx.AsyncClient
    camera_password: str
    terminal_password: str
    app: FastAPI

    @property
    def camera(self) -> dict[str, str]:
        return basic(CAMERA, self.camera_password)

    @property
    def terminal(self) -> dict[str, str]:
        return basic(TERMINAL, self.terminal_password)

    async def post(self, device: str, auth: dict[str, str], content: bytes, content_type: str,
                   query: str = "") -> httpx.Response:
        return await self.client.post(f"/push/hikvision/{self.run.site}/{device}{query}", content=content,
                                      headers={**auth, "Content-Type": content_type})


@pytest.fixture
async def devices(settings_for: Callable[..., Settings], mosquitto: Broker, backend: str) -> AsyncIterator[Devices]:
    settings = settings_for(backend, adapters="adapters.ocpp,adapters.hikvision")
    async with running_hub(settings, mosquitto) as run:
        camera = run.hub.credentials.add(run.site, "gate", CAMERA)  # `smarthub device add SITE gate ID`
        terminal = run.hub.credentials.add(run.site, "access", TERMINAL)
        app = create_app(run.hub)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
            yield Devices(run, client, camera, terminal, app)


async def test_anpr_and_acs_events_are_stored_like_native_ones(devices: Devices) -> None:
    run = devices.run
    raw, content_type = multipart([("anpr.xml", 'text/xml; charset="UTF-8"', load("anpr.xml")),
                                   ("licensePlatePicture.jpg", "image/pjpeg", JPEG)])
    answer = await devices.post(CAMERA, devices.camera, raw, content_type)
    assert answer.status_code == 200, answer.text
    assert answer.json()["what"] == "passage"
    answer = await devices.post(TERMINAL, devices.terminal, load("acs_face_granted.json"),
                                "application/json")
    assert answer.status_code == 200, answer.text
    await run.stored()

    (passage,) = await run.events(kind="gate", type="passage")
    assert (passage["device"], passage["plate"], passage["plate_color"], passage["direction"]) == (
        CAMERA, "琼A12345", "blue", "in")
    assert passage["confidence"] == pytest.approx(0.93)
    (access,) = await run.events(kind="access", type="access")
    assert (access["device"], access["method"], access["subject"], access["result"]) == (TERMINAL, "face", "p-7f3a",
                                                                                        "granted")
    stored = await run.hub.storage.query_events(EventQuery(site=run.site, kind="gate", type="passage"))
    assert [row["plate"] for row in stored] == ["琼A12345"]

    picture = await run.api.get(passage["image"].removeprefix("http://hub"))  # the admin's token
    assert picture.status_code == 200 and picture.content == JPEG
    anonymous = await devices.client.get(passage["image"].removeprefix("http://hub"))
    assert anonymous.status_code == 401
    viewer = run.hub.users.add("guard-room-screen", "viewer")
    seen = await devices.client.get(passage["image"].removeprefix("http://hub"),
                                    headers={"Authorization": f"Bearer {viewer}"})
    assert seen.status_code == 403
    masked = await devices.client.get("/api/events", params={"kind": "gate"},
                                      headers={"Authorization": f"Bearer {viewer}"})
    assert masked.json()[0]["image"] is None and masked.json()[0]["plate"] != "琼A12345"


async def test_a_face_terminals_snapshot_is_personal_like_its_subject(devices: Devices) -> None:
    run = devices.run
    raw, content_type = multipart([("AccessControllerEvent", "application/json", load("acs_face_granted.json")),
                                   ("FaceImage.jpg", "image/jpeg", JPEG)])
    answer = await devices.post(TERMINAL, devices.terminal, raw, content_type)
    assert answer.status_code == 200, answer.text
    await run.stored()
    (access,) = await run.events(kind="access", type="access")
    assert access["image"].startswith("http://hub/push/hikvision/pictures/")  # the admin sees the link
    viewer = run.hub.users.add("lobby-screen", "viewer")
    masked = await devices.client.get("/api/events", params={"kind": "access"},
                                      headers={"Authorization": f"Bearer {viewer}"})
    (row,) = masked.json()
    assert row["image"] is None and row["subject"] != "p-7f3a"


async def test_a_replayed_serial_number_and_history_upload_are_stored_once(devices: Devices) -> None:
    run = devices.run
    acs = load("acs_card_expired.json")
    for _ in range(3):
        assert (await devices.post(TERMINAL, devices.terminal, acs, "application/json")).status_code == 200
    for name in ("anpr.xml", "anpr_history.xml", "anpr_history.xml"):
        answer = await devices.post(CAMERA, devices.camera, load(name), "application/xml")
        assert answer.status_code == 200, answer.text
    await run.stored()
    assert len(await run.events(kind="access", type="access")) == 1
    assert len(await run.events(kind="gate", type="passage")) == 1
    assert run.hub.pipeline.stats.duplicates["access"] == 2
    assert run.hub.pipeline.stats.duplicates["gate"] == 2


async def test_wrong_password_and_wrong_device_get_401(devices: Devices) -> None:
    anpr = load("anpr.xml")
    for auth in (basic(CAMERA, "wrong"), {}, basic(TERMINAL, "x"), {"Authorization": "Digest username=x"}):
        answer = await devices.post(CAMERA, auth, anpr, "application/xml")
        assert answer.status_code == 401
        offered = answer.headers.get_list("WWW-Authenticate")
        assert offered[0].startswith('Digest realm="smarthub", qop="auth", algorithm=MD5, nonce="')
        assert offered[1] == 'Basic realm="smarthub"'
    # the terminal's own password, on the camera's URL, opens nothing
    password = devices.terminal["Authorization"]
    assert (await devices.post(CAMERA, {"Authorization": password}, anpr, "application/xml")).status_code == 401
    await devices.run.stored()
    assert await devices.run.events(kind="gate") == []


async def test_refused_posts_are_dead_lettered_with_the_vendor_payload(devices: Devices) -> None:
    run = devices.run
    bomb = load("bomb.xml")
    answer = await devices.post(CAMERA, devices.camera, bomb, "application/xml")
    assert answer.status_code == 400 and "DTD" in answer.json()["error"]
    acs = load("acs_face_granted.json")
    answer = await devices.post(CAMERA, devices.camera, acs, "application/json")  # an access event from a camera
    assert answer.status_code == 422 and answer.json()["reason"] == "wrong_kind"
    noplate = load("anpr_noplate.xml")
    answer = await devices.post(CAMERA, devices.camera, noplate, "application/xml")
    assert answer.status_code == 422 and answer.json()["reason"] == "no_direction"
    answer = await devices.post(CAMERA, devices.camera, noplate, "application/xml", query="?direction=out")
    assert answer.status_code == 200
    letters = await run.api.get("/api/deadletters")
    assert letters.status_code == 200
    rows = letters.json()
    by_reason = {row["reason"]: row for row in (rows["items"] if isinstance(rows, dict) else rows)}
    assert {"unreadable", "wrong_kind", "no_direction"} <= set(by_reason)
    assert by_reason["wrong_kind"]["payload"] == acs.decode()
    assert by_reason["unreadable"]["topic"] == f"push/hikvision/{run.site}/{CAMERA}"


async def test_a_huge_post_gets_413(devices: Devices) -> None:
    from adapters.hikvision.push import MAX_BODY_BYTES

    huge = b"\xff" * (MAX_BODY_BYTES + 1)
    raw, content_type = multipart([("anpr.xml", "text/xml", load("anpr.xml")),
                                   ("licensePlatePicture.jpg", "image/jpeg", huge)])
    answer = await devices.post(CAMERA, devices.camera, raw, content_type)
    assert answer.status_code == 413
    big_picture = b"\xff" * (body.MAX_PICTURE_BYTES + 1)  # under the post's cap: cut, the event kept
    raw, content_type = multipart([("anpr.xml", "text/xml", load("anpr.xml")),
                                   ("licensePlatePicture.jpg", "image/jpeg", big_picture)])
    answer = await devices.post(CAMERA, devices.camera, raw, content_type)
    assert answer.status_code == 200 and answer.json()["cut"] == ["licensePlatePicture.jpg"]


async def test_a_heartbeat_makes_the_terminal_online(devices: Devices) -> None:
    run = devices.run
    answer = await devices.post(TERMINAL, devices.terminal, load("heartbeat.json"),
                                "application/json")
    assert answer.status_code == 200 and answer.json()["what"] == "heartbeat"
    state = await eventually(lambda: run.hub.live.devices.get((run.site, "access", TERMINAL)), what="live state")
    assert state.online_flag is True


@pytest.mark.parametrize("use_digest", [False, True], ids=["basic", "digest"])
async def test_the_simulated_devices_are_taken(devices: Devices, use_digest: bool) -> None:
    """`smarthub simulate --vendor hikvision [--digest]` against the hub: every post answered 200 (a Digest
    device's challenge once per device aside), stored as events."""
    from simulators import hikvision

    run = devices.run
    logins = [hikvision.Login("gate", CAMERA, devices.camera_password),
              hikvision.Login("access", TERMINAL, devices.terminal_password)]
    stats = await hikvision.run(devices.client, run.site, logins, rate_per_s=200, duration_s=1.0, seed=5,
                                digest=use_digest)
    assert stats.sent > 20 and stats.answered == {200: stats.sent}
    await run.stored()
    assert await run.events(kind="gate", type="passage")
    assert await run.events(kind="access")


def _anpr_with_plate(plate: str) -> tuple[bytes, str]:
    xml = load("anpr.xml").replace("蓝琼A12345".encode(), f"蓝{plate}".encode())
    return multipart([("anpr.xml", 'text/xml; charset="UTF-8"', xml), ("licensePlatePicture.jpg", "image/jpeg",
                                                                       JPEG + plate.encode())])


async def test_posts_at_once_are_kept_together_each_answered_once_committed(devices: Devices) -> None:
    """Cameras posting at the same moment share a batch (one picture hop, one commit): each post is answered
    200 with its own result, its passage stored once and linked to its own picture."""
    import asyncio

    run = devices.run
    plates = [f"琼A{n:05d}" for n in range(24)]
    posts = [_anpr_with_plate(p) for p in plates]
    answers = await asyncio.gather(*(devices.post(CAMERA, devices.camera, raw, ct) for raw, ct in posts),
                                   devices.post(CAMERA, devices.camera, *posts[0]))  # a retry among them
    assert [a.status_code for a in answers] == [200] * 25, [a.text for a in answers]
    assert sorted(a.json()["duplicate"] for a in answers) == [False] * 24 + [True]
    await run.stored()
    stored = await run.hub.storage.query_events(EventQuery(site=run.site, kind="gate", type="passage", limit=100))
    assert sorted(row["plate"] for row in stored) == plates
    for row in stored:
        picture = await run.api.get(row["image"].removeprefix("http://hub"))
        assert picture.status_code == 200 and picture.content == JPEG + row["plate"].encode()


async def test_a_picture_the_disk_refuses_costs_its_link_not_the_event(devices: Devices) -> None:
    run = devices.run
    folder = run.hub.settings.data_dir / "hikvision-pictures"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / run.site).write_bytes(b"")  # a file where the site's folder must go: every write fails
    answer = await devices.post(CAMERA, devices.camera, *_anpr_with_plate("琼B00001"))
    assert answer.status_code == 200, answer.text
    await run.stored()
    (passage,) = await run.events(kind="gate", type="passage")
    assert passage["plate"] == "琼B00001" and passage.get("image") is None


async def test_over_the_hubs_own_http_server_with_keep_alive(devices: Devices) -> None:
    """What the devices meet: uvicorn's HTTP parser on a socket, posts one after another on one connection,
    and a post declaring more than the cap answered 413 before its body is read, its connection closed."""
    import asyncio

    from adapters.hikvision.push import MAX_BODY_BYTES
    from tests.support.hub_fixtures import http_served

    url = f"/push/hikvision/{devices.run.site}/{CAMERA}"
    async with http_served(devices.run) as port:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for plate in ("琼C00001", "琼C00002", "琼C00003"):
                raw, content_type = _anpr_with_plate(plate)
                answer = await client.post(url, content=raw,
                                           headers={**devices.camera, "Content-Type": content_type})
                assert answer.status_code == 200, answer.text
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST {url} HTTP/1.1\r\nHost: hub\r\nAuthorization: {devices.camera['Authorization']}\r\n"
                     f"Content-Type: application/xml\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
                     + b"<EventNotificationAlert>")
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).lower()
        assert head.startswith(b"http/1.1 413") and b"connection: close" in head
        writer.close()
    await devices.run.stored()
    plates = sorted(p["plate"] for p in await devices.run.events(kind="gate", type="passage"))
    assert plates == ["琼C00001", "琼C00002", "琼C00003"]


async def test_a_failed_commit_answers_its_whole_batch_503_and_the_retries_store_each_once(
        devices: Devices) -> None:
    import asyncio
    import sqlite3

    run = devices.run
    hub, failures = run.hub, []
    commit = hub.outbox.commit

    def failing_commit(*args: object, **kwargs: object) -> None:
        if not failures:
            failures.append(1)
            raise sqlite3.OperationalError("disk I/O error")
        commit(*args, **kwargs)  # type: ignore[arg-type]

    hub.outbox.commit = failing_commit  # type: ignore[method-assign]
    posts = [_anpr_with_plate(f"琼D{n:05d}") for n in range(6)]
    answers = await asyncio.gather(*(devices.post(CAMERA, devices.camera, raw, ct) for raw, ct in posts))
    assert [a.status_code for a in answers] == [503] * 6  # one batch, one commit: none answered 200
    again = await asyncio.gather(*(devices.post(CAMERA, devices.camera, raw, ct) for raw, ct in posts))
    assert [a.status_code for a in again] == [200] * 6, [a.text for a in again]
    await run.stored()
    plates = sorted(p["plate"] for p in await run.events(kind="gate", type="passage"))
    assert plates == [f"琼D{n:05d}" for n in range(6)]


# --- HTTP Digest, as the devices' "HTTP listening host" login speaks it ------------------------------------------


async def test_a_device_doing_the_digest_challenge_gets_its_post_stored(devices: Devices) -> None:
    run = devices.run
    auth = httpx.DigestAuth(CAMERA, devices.camera_password)  # challenge, then response; later posts reuse the nonce
    for plate in ("琼E00001", "琼E00002", "琼E00003"):
        answer = await devices.client.post(f"/push/hikvision/{run.site}/{CAMERA}", auth=auth,
                                           content=_anpr_with_plate(plate)[0],
                                           headers={"Content-Type": _anpr_with_plate(plate)[1]})
        assert answer.status_code == 200, answer.text
    acs = await devices.client.post(f"/push/hikvision/{run.site}/{TERMINAL}", content=load("acs_face_granted.json"),
                                    auth=httpx.DigestAuth(TERMINAL, devices.terminal_password),
                                    headers={"Content-Type": "application/json"}, params={"direction": "in"})
    assert acs.status_code == 200, acs.text  # a query string is part of the uri the response covers
    await run.stored()
    plates = sorted(p["plate"] for p in await run.events(kind="gate", type="passage"))
    assert plates == ["琼E00001", "琼E00002", "琼E00003"]
    assert await run.events(kind="access", type="access")


def _push(devices: Devices) -> digest.Nonces:
    """The running endpoint's nonces (to age them: its clock)."""
    for route in devices.app.router.routes:
        owner = getattr(getattr(route, "endpoint", None), "__self__", None)
        if isinstance(owner, Push):
            return owner.nonces
    raise AssertionError("no Hikvision push route")


async def _challenge(devices: Devices) -> tuple[str, str, bool]:
    answer = await devices.post(CAMERA, {}, load("anpr.xml"), "application/xml")
    assert answer.status_code == 401
    offered = digest.parse(answer.headers.get_list("WWW-Authenticate")[0])
    assert offered is not None
    return offered["nonce"], offered["opaque"], offered.get("stale") == "true"


def _digest(user: str, password: str, nonce: str, opaque: str, nc: int, uri: str) -> dict[str, str]:
    """An Authorization header as a device computes it (its own code, not the hub's verifier)."""
    cnonce, nc_hex = "0a4f113bdeadbeef", f"{nc:08x}"
    ha1 = hashlib.md5(f"{user}:smarthub:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"POST:{uri}".encode()).hexdigest()
    response = hashlib.md5(f"{ha1}:{nonce}:{nc_hex}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return {"Authorization": f'Digest username="{user}", realm="smarthub", nonce="{nonce}", uri="{uri}",'
                             f' algorithm=MD5, qop=auth, nc={nc_hex}, cnonce="{cnonce}", response="{response}",'
                             f' opaque="{opaque}"'}


async def test_digest_refuses_wrong_passwords_replays_forged_nonces_other_uris_and_other_devices(
        devices: Devices) -> None:
    run, anpr = devices.run, load("anpr.xml")
    uri = f"/push/hikvision/{run.site}/{CAMERA}"
    nonce, opaque, _ = await _challenge(devices)
    right = _digest(CAMERA, devices.camera_password, nonce, opaque, 1, uri)
    assert (await devices.post(CAMERA, right, anpr, "application/xml")).status_code == 200
    forged = nonce.rsplit(".", 1)[0] + "." + "0" * 32
    refused = {
        "replayed nc": right,
        "wrong password": _digest(CAMERA, "wrong", nonce, opaque, 2, uri),
        "forged nonce": _digest(CAMERA, devices.camera_password, forged, opaque, 1, uri),
        "wrong uri": _digest(CAMERA, devices.camera_password, nonce, opaque, 3,
                             f"/push/hikvision/{run.site}/{TERMINAL}"),
        "the terminal's login": _digest(TERMINAL, devices.terminal_password, nonce, opaque, 4, uri),
        "the camera's id, the terminal's password": _digest(CAMERA, devices.terminal_password, nonce, opaque, 5, uri),
    }
    for what, auth in refused.items():
        answer = await devices.post(CAMERA, auth, anpr, "application/xml")
        assert answer.status_code == 401, what
        assert answer.headers.get_list("WWW-Authenticate")[0].startswith("Digest "), what
    wrong_uri = _digest(CAMERA, devices.camera_password, nonce, opaque, 6, uri)
    assert (await devices.post(CAMERA, wrong_uri, anpr, "application/xml", query="?x=1")).status_code == 401
    assert (await devices.post(CAMERA, _digest(CAMERA, devices.camera_password, nonce, opaque, 7, uri), anpr,
                               "application/xml")).status_code == 200  # the refusals used no count up
    await run.stored()
    assert len(await run.events(kind="gate", type="passage")) == 1


async def test_an_expired_nonce_is_answered_stale_and_httpx_takes_the_next(devices: Devices) -> None:
    run, anpr = devices.run, load("anpr.xml")
    uri = f"/push/hikvision/{run.site}/{CAMERA}"
    nonce, opaque, _ = await _challenge(devices)
    nonces = _push(devices)
    real = nonces.clock
    nonces.clock = lambda: real() + digest.NONCE_TTL_S
    answer = await devices.post(CAMERA, _digest(CAMERA, devices.camera_password, nonce, opaque, 1, uri), anpr,
                                "application/xml")
    assert answer.status_code == 401
    assert answer.headers.get_list("WWW-Authenticate")[0].endswith(", stale=true")
    taken = await devices.client.post(uri, content=anpr, headers={"Content-Type": "application/xml"},
                                      auth=httpx.DigestAuth(CAMERA, devices.camera_password))
    assert taken.status_code == 200, taken.text


async def test_an_account_made_before_digest_keys_opens_with_basic_only(
        devices: Devices, caplog: pytest.LogCaptureFixture) -> None:
    run, anpr = devices.run, load("anpr.xml")
    run.hub.credentials.db.write(lambda tx: tx.execute("UPDATE devices SET ha1 = NULL WHERE device = ?", (CAMERA,)))
    digest_post = await devices.client.post(f"/push/hikvision/{run.site}/{CAMERA}", content=anpr,
                                            headers={"Content-Type": "application/xml"},
                                            auth=httpx.DigestAuth(CAMERA, devices.camera_password))
    assert digest_post.status_code == 401
    assert "run `smarthub device add` again" in caplog.text
    assert (await devices.post(CAMERA, devices.camera, anpr, "application/xml")).status_code == 200
