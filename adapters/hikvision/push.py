"""Hikvision ISAPI event push: the thin HTTP edge between devices' "HTTP listening host" posts and the pipeline.

A device posts to `POST /push/hikvision/{site}/{device}` with HTTP Basic auth: the user is the device id, the
password the one `smarthub device add SITE gate|access ID` gave (the account's kind is the kind the device's events
must map to). The body is read within a cap, parsed (`body`, defused XML), mapped (`mapping`, pure) and handed to
`Hub.ingest`, which commits before the device gets its 200, so an answered post is as durable as an acknowledged
MQTT message; a replayed one is stored once (stable event ids). What cannot be read or mapped is dead-lettered
with the vendor's payload and answered 4xx with why. Digest auth is not offered: the hub keeps only a PBKDF2 hash
of each password, and Digest needs the password (or its MD5 HA1, as good as the password) on the server.

Pictures (plate and face snapshots) are kept under the data dir, each capped (`body.MAX_PICTURE_BYTES`), deleted
after the personal-data retention like the events that link them (`image`), and served only to operators.
The pull alternative (`/ISAPI/Event/notification/alertStream`, for devices that cannot reach the hub) is not built.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from adapters.hikvision import body, mapping
from adapters.hikvision.pictures import Pictures
from hub import topics
from hub.adapters import IngestHeld, basic_auth
from hub.api.deps import refusal
from hub.api.guard import bearer_token
from hub.ingest.decode import Rejected

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)

PREFIX = "/push/hikvision"
PATH = PREFIX + "/{site}/{device}"
PICTURES_PATH = PREFIX + "/pictures/{site}/{device}/{name}"
MAX_BODY_BYTES = 8 * 2**20
"""A post larger than this is refused (413) before it is read further: an ANPR post with four pictures is ~2 MiB."""
PICTURES_DIR = "hikvision-pictures"


def _answer(status: int, **body_: object) -> JSONResponse:
    return JSONResponse(body_, status_code=status)


class Push:
    """The push endpoint of one hub (and the pictures it keeps)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.pictures = Pictures(hub.settings.data_dir / PICTURES_DIR, hub.settings.personal_retention_days * 86_400)

    def _kinds(self, site: str, device: str, authorization: str) -> list[str]:
        """The kinds whose account for this device the Basic login opens (none: refuse)."""
        login = basic_auth(authorization)
        if login is None or login[0] != device:
            return []
        return [kind for kind in mapping.KINDS if self.hub.credentials.check(site, kind, device, login[1])]

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
        kinds = self._kinds(site, device, request.headers.get("authorization", ""))
        if not kinds:
            log.warning("Hikvision %s/%s refused: bad or missing Basic auth", site, device)
            return JSONResponse({"error": "the device id and its password are required (HTTP Basic)"}, 401,
                                headers={"WWW-Authenticate": 'Basic realm="smarthub"'})
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
        direction = request.query_params.get("direction")
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
        if parsed.pictures and mapped.messages and "id" in mapped.messages[0].payload:
            mapped = await self._with_picture(request, site, device, mapped, parsed, direction)
        root = self.hub.settings.root
        try:
            results = self.hub.ingest([(f"{root}/{site}/{kind}/{device}/{m.channel}", orjson.dumps(m.payload))
                                       for m in mapped.messages])
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
        return _answer(200, ok=True, what=mapped.what, duplicate=duplicate, cut=parsed.cut)

    async def _with_picture(self, request: Request, site: str, device: str, mapped: mapping.Mapped,
                            parsed: body.Body, direction: str | None) -> mapping.Mapped:
        """The pictures written (in a worker thread) and the first linked from the event; a disk that fails
        costs the picture, never the event."""
        event_id = str(mapped.messages[0].payload["id"])
        try:
            names = await asyncio.to_thread(self.pictures.save, site, device, event_id, parsed.pictures)
        except OSError as exc:
            log.warning("Hikvision %s/%s: its picture is not kept: %s", site, device, exc)
            return mapped
        url = str(request.url_for("hikvision_picture", site=site, device=device, name=names[0]))
        return mapping.map_document(parsed.document, default_direction=direction, snapshot=url)

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
