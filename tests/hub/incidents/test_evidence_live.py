"""The 高空抛物 evidence package end to end: `smarthub simulate --vendor frigate --throws 1`'s stream on a real
Mosquitto, a real hub with the Frigate adapter, and Frigate's media API as a small real HTTP server (the vendor,
serving bytes). The throw becomes an incident carrying the facade camera, the links, the time and a floor band;
police export it (audited); the archive's chain verifies, by the module and by the CLI against the hub; an edit
to the stored incident, or to the archive, is found."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import sqlite3
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.frigate.mapping import PRE_S
from hub.cli import main
from hub.config import Settings, parse_mqtt_url
from hub.incidents.export import verify_archive
from hub.incidents.floors import floor_band
from simulators import frigate
from tests.support.hub_fixtures import HubRun, eventually, running_hub
from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER, Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]

SNAPSHOT = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 2  # 516 bytes "JPEG"
POST_CLIP = b"\x00\x00\x00\x18ftypmp42" + b"p" * 1500
EVENT_CLIP = b"\x00\x00\x00\x18ftypmp42" + b"c" * 4000  # over the 2 KiB cap this test sets
SNAPSHOT_DELAY_S = 1.0


class FrigateMedia(BaseHTTPRequestHandler):
    """Frigate's media API as far as an export asks it: an event's snapshot and clip, and recordings (this Frigate
    does not record continuously before an event, so the pre-event recording is 404)."""

    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.requests.append(self.path)
        if self.path.endswith("/snapshot.jpg") and self.path.startswith("/api/events/"):
            time.sleep(SNAPSHOT_DELAY_S)  # a slow NVR: the hub's event loop must not wait with it
            self._send(SNAPSHOT, "image/jpeg")
        elif self.path.startswith("/api/events/") and self.path.endswith("/clip.mp4"):
            self._send(EVENT_CLIP, "video/mp4", length=False)  # streamed, no length: cut by the cap as it comes
        elif self.path.startswith(f"/api/{frigate.FACADE}/start/") and self.path.endswith("/clip.mp4"):
            start, end = float(self.path.split("/")[4]), float(self.path.split("/")[6])
            if round(end - start, 3) == PRE_S:  # the minutes before the event: not recorded
                self.send_error(404, "No recordings found for the specified time range")
            else:
                self._send(POST_CLIP, "video/mp4")
        else:
            self.send_error(404)

    def _send(self, body: bytes, ctype: str, length: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def frigate_media() -> Iterator[str]:
    FrigateMedia.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FrigateMedia)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def throw_hub(settings_for: Callable[..., Settings], mosquitto: Broker, root: str, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[HubRun, str, Settings]]:
    prefix = f"frigate-{root}"
    with frigate_media() as api:
        monkeypatch.setenv("SMARTHUB_FRIGATE_TOPIC_PREFIX", prefix)
        monkeypatch.setenv("SMARTHUB_FRIGATE_URL", api)
        monkeypatch.setenv("SMARTHUB_EVIDENCE_MEDIA_MAX_MB", str(2 / 1024))  # 2 KiB
        registry = tmp_path / "registry.toml"
        registry.write_text(frigate.registry("sunshine").to_toml(), encoding="utf-8")  # `--registry-out`
        settings = settings_for("embedded", registry=registry, adapters="adapters.frigate")
        async with running_hub(settings, mosquitto) as run:
            yield run, prefix, settings


def the_throw(messages: list[frigate.Publish]) -> tuple[list[frigate.Publish], str, float]:
    """The stream's Frigate state and the thrown object's own messages (the rest of the estate's traffic is
    other tests' business); its event id and the top of its first box."""
    thrown = next(json.loads(m.payload)["after"] for m in messages if m.topic.endswith("/events")
                  and json.loads(m.payload)["after"]["label"] == "bottle")
    ours = [m for m in messages if not m.topic.endswith(("/events", "/reviews")) or thrown["id"] in m.payload.decode()]
    first = next(json.loads(m.payload)["before"] for m in ours if m.topic.endswith("/events"))
    return ours, thrown["id"], float(first["box"][1])


async def test_a_simulated_throw_exports_a_package_whose_chain_verifies(
        throw_hub: tuple[HubRun, str, Settings], mosquitto: Broker, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run, prefix, settings = throw_hub
    messages, event_id, top = the_throw(frigate.stream(11, int(time.time() * 1000) - 30_000, 20, prefix, throws=1))
    sent = await frigate.publish(parse_mqtt_url(mosquitto.url(DEVICE_USER, DEVICE_PASSWORD)), messages, speed=1e6)
    assert sent == len(messages)

    async def the_incident() -> dict[str, Any] | None:
        listed = (await run.api.get("/api/incidents", params={"site": "sunshine"})).json()
        found = [i for i in listed if any(p["fields"].get("phase") == "end" for p in i["parts"])]
        return found[0] if found else None

    incident = await eventually(the_incident, timeout=10, what="the throw's incident with its end phase")
    assert incident["severity"] == "critical" and incident["title_en"] == "Object thrown from height"

    police = {"Authorization": f"Bearer {run.hub.users.add('王警官', 'police')}"}
    evidence = (await run.api.get(f"/api/incidents/{incident['id']}/evidence", headers=police)).json()["evidence"]
    [detection] = evidence["detections"]
    assert detection["seen_by"]["device"] == "cam-b3-facade" and detection["id"] == f"{event_id}:high_altitude_throw"
    assert detection["start_top_px"] == top
    expected = floor_band(top, frigate.FACADE_MARKS)
    assert expected.known and detection["floors"]["band"] == expected.to_json()["band"]
    assert set(detection["media"]) == {"snapshot", "pre_clip", "post_clip", "clip"}
    whole = (await run.api.get(f"/api/incidents/{incident['id']}/evidence")).json()["evidence"]  # the admin's
    assert whole["detections"][0]["media"] == detection["media"]
    viewer = {"Authorization": f"Bearer {run.hub.users.add('lobby-screen', 'viewer')}"}
    seen = (await run.api.get(f"/api/incidents/{incident['id']}/evidence", headers=viewer)).json()["evidence"]
    assert [d["media"] for d in seen["detections"]] == [{}], "the links are personal: operators' and police's"
    parts = (await run.api.get(f"/api/incidents/{incident['id']}", headers=viewer)).json()["parts"]
    assert any(p["fields"].get("phase") for p in parts)
    assert all(p["fields"].get(role) is None for p in parts for role in ("snapshot", "clip", "pre_clip", "post_clip"))

    export = asyncio.create_task(run.api.post(f"/api/incidents/{incident['id']}/export", headers=police))
    await eventually(lambda: any(r.endswith("/snapshot.jpg") for r in FrigateMedia.requests), what="the fetch")
    started = time.monotonic()
    health = await run.api.get("/api/health")  # the NVR is still sending the snapshot: the hub answers anyway
    assert health.status_code == 200 and time.monotonic() - started < SNAPSHOT_DELAY_S / 2 and not export.done()
    response = await export
    assert response.status_code == 200, response.text
    archive = tmp_path / "evidence.zip"
    archive.write_bytes(response.content)
    digest = hashlib.sha256(response.content).hexdigest()
    assert response.headers["x-evidence-sha256"] == digest

    with zipfile.ZipFile(io.BytesIO(response.content)) as z:
        manifest = json.loads(z.read("manifest.json"))
        assert {m["role"]: z.read(m["name"]) for m in manifest["media"]} == {"snapshot": SNAPSHOT,
                                                                             "post_clip": POST_CLIP}
    missing = {m["role"]: m["reason"] for m in manifest["missing"]}
    assert "answered 404" in missing["pre_clip"] and "more than the cap" in missing["clip"]
    assert manifest["exported_by"] == {"name": "王警官", "role": "police"} and manifest["chain"]["at_export"]["ok"]
    assert manifest["evidence"]["detections"][0]["floors"]["band"] == expected.to_json()["band"]
    assert verify_archive(archive).ok, verify_archive(archive).problems

    trail = (await run.api.get("/api/audit", params={"action": "incident.export"})).json()
    assert [(a["user"], a["role"], a["target"], a["outcome"]) for a in trail] == [
        ("王警官", "police", incident["id"], "ok")]
    assert trail[0]["detail"]["archive_sha256"] == digest
    assert (await run.api.get("/api/audit", headers=police)).status_code == 403  # police read no audit log

    monkeypatch.setenv("SMARTHUB_DATA_DIR", str(settings.data_dir))
    assert main(["evidence", "verify", str(archive), "--hub"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    chain = (await run.api.get(f"/api/incidents/{incident['id']}/chain", headers=police)).json()
    assert chain["ok"] and chain["length"] == manifest["chain"]["length"]

    # Someone with the database file makes the throw look like a floor lower; the chain shows it.
    run.hub.pipeline.flush()
    db = sqlite3.connect(settings.data_dir / "alerts.db")
    body = json.loads(db.execute("SELECT body FROM incidents WHERE id = ?", (incident["id"],)).fetchone()[0])
    for part in body["parts"]:
        if part["fields"].get("start_top_px") is not None:
            part["fields"]["start_top_px"] += 60
    with db:
        db.execute("UPDATE incidents SET body = ? WHERE id = ?", (orjson.dumps(body).decode(), incident["id"]))
    db.close()
    chain = (await run.api.get(f"/api/incidents/{incident['id']}/chain", headers=police)).json()
    assert not chain["ok"] and any("stored differs" in p for p in chain["problems"]), chain
    assert main(["evidence", "chain", incident["id"]]) == 1
    capsys.readouterr()
    again = await run.api.post(f"/api/incidents/{incident['id']}/export", headers=police)
    assert again.status_code == 200
    tampered_export = tmp_path / "again.zip"
    tampered_export.write_bytes(again.content)
    verdict = verify_archive(tampered_export)  # the edited incident travels with the proof that it was edited
    assert not verdict.ok and any("stored differs" in p for p in verdict.problems)

    # And an archive changed after it left the hub: a media byte.
    changed = tmp_path / "changed.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(changed, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info.filename, data[:-1] + b"?" if info.filename.endswith("snapshot.jpg") else data)
    assert main(["evidence", "verify", str(changed), "--hub"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert any("snapshot.jpg: its SHA-256" in p for p in result["problems"])
    assert any("no export with this archive's SHA-256" in p for p in result["problems"])


async def test_only_operators_and_police_export_and_a_refusal_fetches_nothing(
        throw_hub: tuple[HubRun, str, Settings]) -> None:
    run, _, _ = throw_hub
    viewer = {"Authorization": f"Bearer {run.hub.users.add('v', 'viewer')}"}
    maintenance = {"Authorization": f"Bearer {run.hub.users.add('m', 'maintenance')}"}
    for headers in (viewer, maintenance):
        assert (await run.api.post("/api/incidents/x1/export", headers=headers)).status_code == 403
    assert (await run.api.post("/api/incidents/x1/export")).status_code == 404  # the admin: allowed, none such
    assert FrigateMedia.requests == []
