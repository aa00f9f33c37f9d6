"""Hikvision ISAPI event push: the thin HTTP edge between devices' "HTTP listening host" posts and the pipeline.

A device posts to `POST /push/hikvision/{site}/{device}` with HTTP Digest (MD5, qop=auth: what the devices'
HTTP listening host login speaks, `digest`) or Basic auth: the user is the device id, the password the one
`smarthub device add SITE gate|access ID` gave (the account's kind is the kind the device's events must map to);
a post without a valid login is answered 401 with both challenges, Digest first.
The body is read within a cap, parsed (`body`, defused XML), mapped (`mapping`, pure) and handed to
`Hub.ingest`, which commits before the device gets its 200, so an answered post is as durable as an acknowledged
MQTT message; a replayed one is stored once (stable event ids). What cannot be read or mapped is dead-lettered
with the vendor's payload and answered 4xx with why. For Digest the accounts store keeps each account's HA1
beside its PBKDF2 hash (`hub.credentials`); accounts made before that open with Basic only.

Pictures (plate and face snapshots) are kept under the data dir, each capped (`body.MAX_PICTURE_BYTES`), deleted
after the personal-data retention like the events that link them (`image`), and served only to operators.
The pull alternative (`/ISAPI/Event/notification/alertStream`, for devices that cannot reach the hub) is not built.

What a post costs was measured (bench/vendors.py, README's Measured section): a login verified once is not hashed
again for a minute unless an account changes (`Credentials.opens`), and the posts that arrive while one batch is
being kept are kept together (`Batches`): their pictures in one worker-thread hop, their events in one outbox
commit, each post still answered only once its own events are committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from adapters.hikvision import body, digest, mapping
from adapters.hikvision.pictures import Pictures
from hub import topics
from hub.adapters import IngestHeld, basic_auth
from hub.api.deps import refusal
from hub.api.guard import bearer_token
from hub.ingest.decode import Rejected

if TYPE_CHECKING:
    from devices.base import Accepted
    from hub.app import Hub

    Result = Accepted | Rejected | None

log = logging.getLogger(__name__)

PREFIX = "/push/hikvision"
PATH = PREFIX + "/{site}/{device}"
PICTURES_PATH = PREFIX + "/pictures/{site}/{device}/{name}"
MAX_BODY_BYTES = 8 * 2**20
"""A post larger than this is refused (413) before it is read further: an ANPR post with four pictures is ~2 MiB."""
PICTURES_DIR = "hikvision-pictures"


def _answer(status: int, **body_: object) -> JSONResponse:
    return JSONResponse(body_, status_code=status)


@dataclass(slots=True)
class Post:
    """One answered-to-be post in a batch: its events (with the pictures to keep and link first) and its answer."""

    site: str
    device: str
    root: str
    kind: str
    mapped: mapping.Mapped
    pictures: list[body.Picture]
    picture_url: str
    """The pictures' URL prefix (`.../pictures/{site}/{device}/`), a file name goes after it."""
    done: asyncio.Future[list[Result]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def contract(self) -> list[tuple[str, bytes]]:
        return [(f"{self.root}/{self.site}/{self.kind}/{self.device}/{m.channel}", orjson.dumps(m.payload))
                for m in self.mapped.messages]


class Batches:
    """Posts kept together: the posts that arrive while one batch is kept form the next, so many cameras at once
    cost one worker-thread hop for all their pictures and one outbox commit for all their events (`Hub.ingest`).

    A post's future gets its own messages' results once the commit returned, or the commit's exception (IngestHeld,
    a failed commit) for every post of the batch: none is answered 200 before its events are durable. A picture
    the disk refuses costs that picture's link, never the event."""

    def __init__(self, hub: Hub, pictures: Pictures) -> None:
        self.hub = hub
        self.pictures = pictures
        self._waiting: list[Post] = []
        self._keeper: asyncio.Task[None] | None = None

    async def keep(self, post: Post) -> list[Result]:
        self._waiting.append(post)
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep_all())
        return await post.done

    async def _keep_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._keep(batch)
            except BaseException as exc:  # every post gets an answer, whatever failed (a cancelled hub included)
                stopped = not isinstance(exc, Exception)
                if stopped:  # nothing will keep the posts still waiting either
                    batch, self._waiting = batch + self._waiting, []
                for post in batch:
                    if not post.done.done():
                        post.done.set_exception(exc)
                if stopped:
                    raise

    async def _keep(self, batch: list[Post]) -> None:
        with_pictures = [p for p in batch if p.pictures]
        if with_pictures:
            saved = await asyncio.to_thread(self._save, with_pictures)
            for post, names in zip(with_pictures, saved, strict=True):
                if names:
                    post.mapped = mapping.linked(post.mapped, post.picture_url + names[0])
        contract = [p.contract() for p in batch]
        results = self.hub.ingest([m for messages in contract for m in messages])
        start = 0
        for post, messages in zip(batch, contract, strict=True):
            if not post.done.done():  # its request may be gone (the device hung up)
                post.done.set_result(results[start:start + len(messages)])
            start += len(messages)

    def _save(self, posts: list[Post]) -> list[list[str]]:
        """In a worker thread: each post's pictures written, or none for a post whose write the disk refused."""
        saved = []
        for post in posts:
            event_id = str(post.mapped.messages[0].payload["id"])
            try:
                saved.append(self.pictures.save(post.site, post.device, event_id, post.pictures))
            except OSError as exc:
                log.warning("Hikvision %s/%s: its picture is not kept: %s", post.site, post.device, exc)
                saved.append([])
        return saved


class Push:
    """The push endpoint of one hub (and the pictures it keeps)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.pictures = Pictures(hub.settings.data_dir / PICTURES_DIR, hub.settings.personal_retention_days * 86_400)
        self.batches = Batches(hub, self.pictures)
        self.nonces = digest.Nonces()

    def _login(self, site: str, device: str, request: Request) -> digest.Opened:
        """The kinds whose account for this device the request's Digest or Basic login opens (none: refuse)."""
        authorization = request.headers.get("authorization", "")
        if authorization[:7].lower() == "digest ":
            raw_path = request.scope.get("raw_path") or request.url.path.encode()
            query = request.scope.get("query_string", b"")
            target = (raw_path + b"?" + query if query else raw_path).decode("latin-1")
            return digest.verify(authorization, request.method, target, device, mapping.KINDS, self.nonces,
                                 lambda: self.hub.credentials.digest_keys(site, device, mapping.KINDS))
        login = basic_auth(authorization)
        if login is None or login[0] != device:
            return digest.Opened(why="bad or missing auth")
        kinds = self.hub.credentials.opens(site, device, login[1], mapping.KINDS)
        return digest.Opened(tuple(kinds), why="" if kinds else "a wrong Basic password")

    def _refused(self, site: str, device: str, opened: digest.Opened) -> Response:
        log.warning("Hikvision %s/%s refused: %s", site, device, opened.why)
        answer = JSONResponse({"error": "the device id and its password are required (HTTP Digest or Basic)"}, 401)
        answer.headers.append("WWW-Authenticate", digest.challenge(self.nonces.issue(), self.nonces.opaque,
                                                                   opened.stale))
        answer.headers.append("WWW-Authenticate", f'Basic realm="{digest.REALM}"')
        return answer

    def dead_letter(self, site: str, device: str, kind: str, reason: str, detail: str, raw: bytes) -> None:
        self.hub.dead_letters.add(Rejected.of(f"{PREFIX.lstrip('/')}/{site}/{device}", reason, detail, raw,
                                              int(time.time() * 1000), kind))
        self.hub.dead_letters.flush()

    async def _read(self, request: Request) -> bytes | None:
        """The body, or None past MAX_BODY_BYTES (the rest is not read)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def endpoint(self, request: Request) -> Response:
        site, device = request.path_params["site"], request.path_params["device"]
        if not topics.SITE_RE.fullmatch(site) or not topics.DEVICE_RE.fullmatch(device):
            return _answer(404, error="no such device")
        opened = self._login(site, device, request)
        if not opened.kinds:
            return self._refused(site, device, opened)
        kinds = list(opened.kinds)
        try:
            raw = await self._read(request)
        except ClientDisconnect:
            return Response(status_code=400)
        if raw is None:
            return JSONResponse({"error": f"the post is larger than {MAX_BODY_BYTES} bytes"}, 413,
                                headers={"Connection": "close"})
        content_type = request.headers.get("content-type", "")
        try:
            parsed = body.parse_body(raw, content_type)
        except body.Unreadable as exc:
            self.dead_letter(site, device, kinds[0], "unreadable", str(exc), raw)
            return _answer(400, error=str(exc))
        direction = request.query_params.get("direction") if request.scope.get("query_string") else None
        try:
            mapped = mapping.map_document(parsed.document, default_direction=direction)
        except mapping.Unmapped as exc:
            self.dead_letter(site, device, kinds[0], exc.reason, str(exc), parsed.raw)
            return _answer(422, error=str(exc), reason=exc.reason)
        except Exception as exc:  # noqa: BLE001 - a document the mapping did not foresee: kept, never a 500
            log.exception("Hikvision %s/%s: the mapping failed on a document", site, device)
            self.dead_letter(site, device, kinds[0], "unmappable", f"{type(exc).__name__}: {exc}"[:500], parsed.raw)
            return _answer(422, error="the document cannot be mapped", reason="unmappable")
        kind = mapped.kind or kinds[0]
        if kind not in kinds:
            detail = f"a {kind} event from a device registered as {', '.join(kinds)}"
            self.dead_letter(site, device, kinds[0], "wrong_kind", detail, parsed.raw)
            return _answer(422, error=detail, reason="wrong_kind")
        pictures = parsed.pictures if mapped.messages and "id" in mapped.messages[0].payload else []
        picture_url = f"{str(request.base_url).rstrip('/')}{PREFIX}/pictures/{site}/{device}/"  # url_for's, cheaply
        post = Post(site, device, self.hub.settings.root, kind, mapped, pictures, picture_url)
        try:
            results = await self.batches.keep(post)
        except IngestHeld as exc:
            return JSONResponse({"error": f"the hub cannot store now; send again later ({exc})"}, 503,
                                headers={"Retry-After": "30"})
        except Exception:  # noqa: BLE001 - the outbox cannot commit: not answered 200, so the device sends again
            log.exception("Hikvision %s/%s: the post could not be committed", site, device)
            return _answer(503, error="the hub cannot store now; send again later")
        refused = [r for r in results if isinstance(r, Rejected)]
        if refused:
            self.dead_letter(site, device, kind, refused[0].reason, refused[0].detail, parsed.raw)
            return _answer(422, error=refused[0].detail[:500], reason=refused[0].reason)
        now = time.time()
        if self.pictures.sweep_due(now):  # retention of the pictures, off the event loop and off the answer
            asyncio.get_running_loop().run_in_executor(None, self.pictures.sweep, now)
        duplicate = bool(results) and all(r is None for r in results)  # stored before: a retry or a replay
        return _answer(200, ok=True, what=post.mapped.what, duplicate=duplicate, cut=parsed.cut)

    async def picture(self, request: Request) -> Response:
        """A kept snapshot, to operators only (plates and faces are personal data)."""
        found = refusal(self.hub.users, bearer_token(request.headers.get("authorization")), "operator")
        if isinstance(found, HTTPException):
            return JSONResponse({"error": found.detail}, found.status_code, headers=found.headers)
        p = request.path_params
        path = self.pictures.path(p["site"], p["device"], p["name"])
        if path is None or not path.is_file():
            return _answer(404, error="no such picture")
        return FileResponse(path)


class HikvisionAdapter:
    """The hub's adapter seam (hub/adapters.py): the push route and the pictures route of one hub."""

    name = "hikvision"
    body_limits = {PREFIX + "/": MAX_BODY_BYTES}
    """Posts carry pictures: the API's own body cap (64 KiB) is for JSON requests."""

    def routes(self, hub: Hub) -> Sequence[BaseRoute]:
        push = Push(hub)
        return [Route(PICTURES_PATH, push.picture, methods=["GET"], name="hikvision_picture"),
                Route(PATH, push.endpoint, methods=["POST"])]
