"""The evidence package: one zip archive of an incident, its evidence, its hash chain and the media the hub can
fetch, and the check that an archive is what the hub gave out.

    manifest.json   format, who exported it and when, the incident (as the API shows it whole, and as stored),
                    its evidence, the media fetched (name, link, SHA-256, bytes) and those not fetched (why)
                    and `personal`: the incident's salt and the personal values it still holds with their digests,
                    so whoever receives it can check them against the chain (which holds only the digests)
    chain.jsonl     the incident's hash chain (hub/incidents/chain.py), one link a line, ending in this export
    media/...       the snapshots and clips, as their server sent them

Media come over HTTP from the links the detections carry (Frigate's API for adapters/frigate), only from the
origins allowed (the adapters' own, `SMARTHUB_EVIDENCE_MEDIA_ORIGINS`): a device's link is never a way to make
the hub fetch anything else. Each fetch has a timeout and a size cap and streams to disk; one that fails, is
too large, is past the personal-data retention or not allowed is listed in the manifest with the reason, and
the export goes on. Before the archive is written the export is appended to the incident's chain (the media's
hashes and the exported incident's), so the chain covers what was given out; the archive's own SHA-256 goes to
the audit log with the chain's head. The hub keeps no copy: snapshots of people are personal data.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from hub.audit import AuditLog
from hub.incidents.chain import ChainStore, Link, Verdict, canonical, personal_values, sealed_links, verify
from hub.incidents.evidence import MEDIA_ROLES
from hub.incidents.merge import Incident
from hub.incidents.store import dump, load
from hub.times import iso
from hub.users import User

log = logging.getLogger(__name__)

FORMAT = "smarthub-evidence/1"
MANIFEST = "manifest.json"
CHAIN = "chain.jsonl"
MEDIA_DIR = "media/"
MAX_TEXT_ENTRY_BYTES = 64 * 2**20
"""A manifest or chain larger than this in an archive to verify is refused, not read (a zip bomb)."""
STALE_S = 3600.0
"""Export files left behind by a stopped hub are removed at the next export after this long."""
EXTENSIONS = {"snapshot": ".jpg", "clip": ".mp4", "pre_clip": ".mp4", "post_clip": ".mp4"}
AUDIT_ACTION = "incident.export"
PERSONAL_DIGEST = ('{"sha256": sha256(bytes.fromhex(salt) + the value\'s canonical JSON)}: how the chain holds each '
                   "personal value (part fields listed in its `personal`, media links, urls)")


@dataclass(frozen=True, slots=True)
class Limits:
    """What one export may fetch (the hub's `SMARTHUB_EVIDENCE_*` settings)."""

    media_max_mb: float = 64.0
    export_max_mb: float = 512.0
    fetch_timeout_s: float = 10.0
    fetch_total_s: float = 120.0


def origin(url: str) -> str | None:
    """scheme://host:port of an http(s) URL, lower case, the port explicit; None for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}"


def origins(urls: Sequence[str]) -> frozenset[str]:
    return frozenset(o for u in urls if (o := origin(u.strip())) is not None)


@dataclass(frozen=True, slots=True)
class Wanted:
    """One link to fetch: which detection and which role it has there."""

    detection: str
    role: str
    url: str
    at_ms: int

    @property
    def name(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.detection)[:80]
        return f"{MEDIA_DIR}{safe}-{self.role}{EXTENSIONS.get(self.role, '.bin')}"


@dataclass(frozen=True, slots=True)
class Fetched:
    wanted: Wanted
    path: Path
    sha256: str
    bytes: int
    content_type: str | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.wanted.name, "detection": self.wanted.detection, "role": self.wanted.role,
                "url": self.wanted.url, "sha256": self.sha256, "bytes": self.bytes, "content_type": self.content_type}


@dataclass(frozen=True, slots=True)
class Missing:
    wanted: Wanted
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"detection": self.wanted.detection, "role": self.wanted.role, "url": self.wanted.url,
                "reason": self.reason}


def wanted(evidence: dict[str, Any] | None) -> list[Wanted]:
    """Every link of the evidence, once each, stills first."""
    out: dict[str, Wanted] = {}
    for detection in (evidence or {}).get("detections", ()):
        for role in MEDIA_ROLES:
            url = detection["media"].get(role)
            if url and url not in out:
                out[url] = Wanted(str(detection["id"]), role, url, int(detection["at_ms"]))
    return sorted(out.values(), key=lambda w: MEDIA_ROLES.index(w.role))


class TooLarge(Exception):
    pass


async def fetch(client: httpx.AsyncClient, want: Wanted, into: Path, max_bytes: int,
                total_s: float) -> Fetched | Missing:
    """One link streamed to a file under `into`, hashed on the way; what went wrong as a Missing, never raised."""
    path = into / f"{len(list(into.iterdir()))}.part"
    digest, size = hashlib.sha256(), 0
    try:
        async with asyncio.timeout(total_s), client.stream("GET", want.url) as response:
            if response.status_code != 200:
                return Missing(want, f"the media server answered {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                return Missing(want, f"{int(declared):,} bytes, more than the cap of {max_bytes:,}")
            with path.open("wb") as out:
                async for chunk in response.aiter_bytes(256 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge
                    digest.update(chunk)
                    out.write(chunk)  # 256 KiB at a time to a local file: short enough not to hold the loop
            ctype = response.headers.get("content-type")
    except TooLarge:
        path.unlink(missing_ok=True)
        return Missing(want, f"more than the cap of {max_bytes:,} bytes")
    except TimeoutError:
        path.unlink(missing_ok=True)
        return Missing(want, f"not fetched within {total_s:g} s")
    except httpx.HTTPError as exc:
        path.unlink(missing_ok=True)
        return Missing(want, f"cannot fetch: {type(exc).__name__}: {str(exc)[:200]}")
    if size == 0:
        path.unlink(missing_ok=True)
        return Missing(want, "the media server sent no bytes")
    return Fetched(want, path, digest.hexdigest(), size, ctype)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_archive(path: Path, manifest: dict[str, Any], links: Sequence[Link], media: Sequence[Fetched]) -> str:
    """The zip (media stored as they are, text deflated); returns its SHA-256."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True))
        z.writestr(CHAIN, "".join(json.dumps(link.to_json(), ensure_ascii=False, sort_keys=True) + "\n"
                                  for link in links))
        for item in media:
            z.write(item.path, item.wanted.name, compress_type=zipfile.ZIP_STORED)
    return sha256_file(path)


@dataclass(slots=True)
class Export:
    """A written archive, for the route to send and then delete."""

    path: Path
    name: str
    sha256: str
    export_id: str
    head: str
    fetched: int
    missing: int
    workdir: Path = field(repr=False)

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class Exporter:
    """Builds an incident's package: media fetched without holding the event loop, the export chained and
    audited, the zip written in a worker thread."""

    def __init__(self, chain: ChainStore, audit: AuditLog, evidence: Callable[[Incident], dict[str, Any] | None],
                 workdir: Path, allowed: frozenset[str], personal_retention_s: float,
                 limits: Limits = Limits()) -> None:  # noqa: B008 - a frozen value, shared safely
        self.chain = chain
        self.audit = audit
        self.evidence = evidence
        self.workdir = workdir
        self.allowed = allowed
        """Origins media are fetched from (`origins()`); links elsewhere are listed, never fetched."""
        self.personal_retention_s = personal_retention_s
        self.limits = limits

    def _sweep(self) -> None:
        """Remove what a stopped hub left behind (an archive it was sending)."""
        if not self.workdir.is_dir():
            return
        for stale in self.workdir.iterdir():
            if stale.stat().st_mtime < time.time() - STALE_S:
                shutil.rmtree(stale, ignore_errors=True)

    async def _media(self, evidence: dict[str, Any] | None, into: Path) -> list[Fetched | Missing]:
        s = self.limits
        out: list[Fetched | Missing] = []
        budget = int(s.export_max_mb * 2**20)
        horizon_ms = (time.time() - self.personal_retention_s) * 1000
        timeout = httpx.Timeout(s.fetch_timeout_s)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            for want in wanted(evidence):
                if origin(want.url) not in self.allowed:
                    out.append(Missing(want, f"{origin(want.url) or 'not an http(s) URL'} is not an origin media "
                                             "are fetched from (SMARTHUB_EVIDENCE_MEDIA_ORIGINS)"))
                elif want.at_ms < horizon_ms:
                    out.append(Missing(want, "past the personal-data retention "
                                             f"({self.personal_retention_s / 86_400:g} days)"))
                elif budget <= 0:
                    out.append(Missing(want, f"the export's cap of {s.export_max_mb:g} MiB is reached"))
                else:
                    got = await fetch(client, want, into, min(int(s.media_max_mb * 2**20), budget), s.fetch_total_s)
                    if isinstance(got, Fetched):
                        budget -= got.bytes
                    out.append(got)
        return out

    async def export(self, incident: Incident, user: User,
                     current: Callable[[str], Incident | None] = lambda _: None) -> Export:
        """The package of `incident` as `user` takes it; audited whatever the media did. `current` reads the
        stored incident again once the media are in, so what is chained and written is one version of it."""
        await asyncio.to_thread(self._sweep)
        self.workdir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="export-", dir=self.workdir))
        try:
            media = await self._media(self.evidence(incident), work)
            # From here to the chain's append nothing awaits: the incident, its evidence and the chain agree.
            incident = current(incident.id) or incident
            evidence = self.evidence(incident)
            # Checked, never chained here: chaining what is stored now would make an edit to it look legitimate.
            stored_chain = self.chain.verdict(incident.id, incident)
            fetched = [m for m in media if isinstance(m, Fetched)]
            missing = [m for m in media if isinstance(m, Missing)]
            export_id = f"x-{int(time.time() * 1000)}-{secrets.token_hex(4)}"
            stored = json.loads(dump(incident))
            now_ms = int(time.time() * 1000)
            record = {"type": "export", "key": export_id, "at_ms": now_ms, "by": user.name, "role": user.role,
                      "incident_sha256": hashlib.sha256(canonical(stored).encode()).hexdigest(),
                      "evidence_sha256": hashlib.sha256(canonical(evidence or {}).encode()).hexdigest(),
                      "media": self.chain.seal_links(incident.id, [m.to_json() for m in fetched]),
                      "missing": self.chain.seal_links(incident.id, [m.to_json() for m in missing])}
            [last] = self.chain.append(incident.id, [record])
            links = self.chain.links(incident.id, upto=last.seq)
            salt = self.chain.salt(incident.id)
            manifest = {
                "format": FORMAT, "export_id": export_id, "exported_at": iso(now_ms),
                "exported_by": {"name": user.name, "role": user.role}, "incident": incident.to_json(),
                "stored": stored, "evidence": evidence, "media": [m.to_json() for m in fetched],
                "missing": [m.to_json() for m in missing],
                "personal": {"salt": salt.hex() if salt is not None else None, "digest": PERSONAL_DIGEST,
                             "values": personal_values(links, incident, salt)},
                "chain": {"file": CHAIN, "length": len(links), "head": last.hash,
                          "hash": "sha256(prev hash as 64 hex characters + the record's canonical JSON text)",
                          "at_export": stored_chain.to_json()},
                "verify": "smarthub evidence verify ARCHIVE",
            }
            path = work / f"evidence-{incident.id}.zip"
            digest = await asyncio.to_thread(write_archive, path, manifest, links, fetched)
            for item in fetched:
                item.path.unlink(missing_ok=True)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            self.audit.record(user.name, user.role, AUDIT_ACTION, incident.id, "failed")
            raise
        self.audit.record(user.name, user.role, AUDIT_ACTION, incident.id, "ok", {
            "export_id": export_id, "archive_sha256": digest, "chain_head": last.hash, "chain_length": len(links),
            "chain_ok": stored_chain.ok, "media": len(fetched), "missing": len(missing)})
        log.info("incident %s exported by %s (%s): %d media, %d not fetched, archive sha256 %s", incident.id,
                 user.name, user.role, len(fetched), len(missing), digest)
        return Export(path, path.name, digest, export_id, last.hash, len(fetched), len(missing), work)


def _read_text(z: zipfile.ZipFile, name: str) -> str:
    info = z.getinfo(name)
    if info.file_size > MAX_TEXT_ENTRY_BYTES:
        raise ValueError(f"{name} is {info.file_size:,} bytes, more than {MAX_TEXT_ENTRY_BYTES:,}")
    return z.read(name).decode("utf-8")


def _entry_sha256(z: zipfile.ZipFile, name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with z.open(name) as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def verify_archive(path: Path) -> Verdict:
    """Whether an archive holds together: its chain's links, the incident it carries against that chain, the
    export record at its end against the manifest and the media files. (Whether the hub gave it out is the
    audit log's: `smarthub evidence verify --data-dir`.)"""
    try:
        with zipfile.ZipFile(path) as z:
            manifest = json.loads(_read_text(z, MANIFEST))
            links = [Link.of(json.loads(line)) for line in _read_text(z, CHAIN).splitlines() if line.strip()]
            verdict = _verify_opened(z, manifest, links)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        return Verdict(0, "", [f"not a readable evidence archive: {type(exc).__name__}: {exc}"])
    return verdict


def _verify_opened(z: zipfile.ZipFile, manifest: dict[str, Any], links: list[Link]) -> Verdict:
    stored = manifest.get("stored")
    incident = load(json.dumps(stored)) if isinstance(stored, dict) else None
    personal = manifest.get("personal") or {}
    salt = bytes.fromhex(personal["salt"]) if personal.get("salt") else None
    verdict = verify(links, incident, salt)
    problems = verdict.problems
    if incident is not None and personal.get("values") != personal_values(links, incident, salt):
        problems.append("the manifest's personal values are not the stored incident's, or not their digests")
    if manifest.get("format") != FORMAT:
        problems.append(f"format {manifest.get('format')!r} is not {FORMAT}")
    if incident is not None and incident.to_json() != manifest.get("incident"):
        problems.append("the manifest's incident differs from the stored incident it carries")
    if not links:
        return verdict
    export = links[-1].record
    if export.get("type") != "export" or export.get("key") != manifest.get("export_id"):
        problems.append("the chain does not end in this export's record")
        return verdict
    if manifest.get("chain", {}).get("head") != links[-1].hash or manifest["chain"].get("length") != len(links):
        problems.append("the manifest's chain head or length is not the chain's")
    if export.get("incident_sha256") != hashlib.sha256(canonical(stored or {}).encode()).hexdigest():
        problems.append("the stored incident is not the one the export record hashed")
    evidence = manifest.get("evidence")
    if export.get("evidence_sha256") != hashlib.sha256(canonical(evidence or {}).encode()).hexdigest():
        problems.append("the manifest's evidence is not the one the export record hashed")
    media, missing = manifest.get("media", []), manifest.get("missing", [])
    if salt is None and any("url" in item for item in (*media, *missing)):
        problems.append("the manifest lists media links but carries no salt to check them with")
    elif (sealed_links(media, salt) if salt else media) != export.get("media") or (
            sealed_links(missing, salt) if salt else missing) != export.get("missing"):
        problems.append("the manifest's media list differs from the export record's")
    listed = {m["name"]: m for m in export.get("media", ())}
    present = {n for n in z.namelist() if n.startswith(MEDIA_DIR) and not n.endswith("/")}
    for name in sorted(present - set(listed)):
        problems.append(f"{name}: in the archive but not in the export record (added)")
    for name, item in sorted(listed.items()):
        if name not in present:
            problems.append(f"{name}: in the export record but not in the archive (removed)")
            continue
        digest, size = _entry_sha256(z, name)
        if digest != item["sha256"] or size != item["bytes"]:
            problems.append(f"{name}: its SHA-256 is not the one the export record holds (changed)")
    return verdict


def issued(verdict: Verdict, archive_sha256: str, incident_id: str | None, audit: AuditLog,
           chain: ChainStore) -> Verdict:
    """An archive's verdict completed by this hub's own records: its SHA-256 is an audited export, and the chain
    it carries is a prefix of the incident's chain here (so neither was rewritten since)."""
    exports = [e for e in audit.recent(1_000_000, AUDIT_ACTION) if e["outcome"] == "ok"]
    if not any(e["detail"].get("archive_sha256") == archive_sha256 for e in exports):
        verdict.problems.append("this hub's audit log has no export with this archive's SHA-256")
    if incident_id is None:
        return verdict
    here = chain.links(incident_id)
    if verdict.length > len(here) or not here or here[verdict.length - 1].hash != verdict.head:
        verdict.problems.append("the archive's chain head is not in this hub's chain of the incident (rewritten)")
    return verdict
