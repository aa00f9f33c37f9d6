"""What a throw incident carries as evidence (camera, links, time, floor band), and the archive check: an
exported package whose chain, incident or media were changed afterwards fails it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from devices.camera import DERIVED
from hub.alerts.models import open_alert
from hub.alerts.store import AlertStore
from hub.audit import AuditLog
from hub.incidents.chain import ChainStore, personal_values
from hub.incidents.evidence import evidence_of
from hub.incidents.export import Fetched, Missing, Wanted, origin, sha256_file, verify_archive, wanted, write_archive
from hub.incidents.merge import Incident, alert_part, event_part, place, places_of
from hub.incidents.store import IncidentStore, dump
from hub.registry import Device

pytestmark = pytest.mark.unit

T0 = 1_800_000_000_000
API = "http://frigate.test:5000"
FACADE = Device(site="sunshine", kind="camera", device="cam-b3-facade", name="3号楼立面", building="3",
                floor_calibration=[(250, 19), (600, 8), (1000, 1)])
THROW_ID = "1800000000.5-zz99yy:high_altitude_throw"


def throw_phase(phase: str, at_ms: int, **extra: object) -> dict[str, object]:
    return {"type": "detection", "id": THROW_ID, "label": "high_altitude_throw", "phase": phase, "score": 0.8,
            "zone": "facade", "start_top_px": 410.0, **extra}


def throw_incident(device: Device = FACADE, top: float | None = 410.0) -> Incident:
    alert = open_alert("sunshine", "camera", device.device, "high_altitude_throw", DERIVED["high_altitude_throw"],
                       "score 0.80 in facade", T0)
    places = places_of(device, device.device)
    incident = place([], alert_part(alert, places), 300_000)
    assert incident is not None
    phases = [("start", T0, {"snapshot": f"{API}/api/events/e1/snapshot.jpg",
                             "pre_clip": f"{API}/api/b3_facade/start/1/end/2/clip.mp4",
                             "post_clip": f"{API}/api/b3_facade/start/2/end/3/clip.mp4"}),
              ("update", T0 + 500, {"snapshot": f"{API}/api/events/e1/snapshot.jpg"}),
              ("end", T0 + 2500, {"clip": f"{API}/api/events/e1/clip.mp4"})]
    for phase, at, links in phases:
        fields = throw_phase(phase, at, **links)
        if top is None:
            fields.pop("start_top_px")
        made = place([incident], event_part("sunshine", "camera", device.device, THROW_ID, at, "detection", places,
                                            fields), 300_000)
        assert made is not None
        incident = made
    return incident


def test_a_throw_incident_carries_its_camera_links_time_and_floor_band() -> None:
    incident = throw_incident()
    evidence = evidence_of(incident, {FACADE.key: FACADE}.get)
    assert evidence is not None
    [detection] = evidence["detections"]
    assert detection["seen_by"] == {"site": "sunshine", "device": "cam-b3-facade", "name": "3号楼立面", "building": "3"}
    assert detection["media"] == {"snapshot": f"{API}/api/events/e1/snapshot.jpg",
                                  "pre_clip": f"{API}/api/b3_facade/start/1/end/2/clip.mp4",
                                  "post_clip": f"{API}/api/b3_facade/start/2/end/3/clip.mp4",
                                  "clip": f"{API}/api/events/e1/clip.mp4"}
    assert detection["at"] == "2027-01-15T08:00:00.000Z" and detection["phases"] == ["start", "update", "end"]
    # row 410 between floor 8 (600) and the roof line, 19 (250): level 8 + 11 * 190/350 = 13.97
    assert detection["floors"]["band"] == "13-14" and detection["floors"]["estimate"] == 13.97


def test_without_a_calibration_the_band_is_unknown_and_the_rest_is_kept() -> None:
    plain = Device(site="sunshine", kind="camera", device="cam-b3-facade")
    evidence = evidence_of(throw_incident(plain), {plain.key: plain}.get)
    assert evidence is not None
    assert evidence["detections"][0]["floors"]["band"] == "unknown"
    assert "no floor calibration" in evidence["detections"][0]["floors"]["reason"]
    assert len(evidence["detections"][0]["media"]) == 4
    unregistered = evidence_of(throw_incident(), lambda key: None)
    assert unregistered is not None and unregistered["detections"][0]["floors"]["band"] == "unknown"


def test_an_incident_without_detection_media_carries_no_evidence() -> None:
    incident = throw_incident()
    bare = Incident(incident.id, incident.site, incident.opened_ms, incident.last_ms, incident.title,
                    incident.title_en, incident.parts[:1], incident.timeline[:1], incident.places)
    assert evidence_of(bare, {FACADE.key: FACADE}.get) is None


def test_each_link_is_fetched_once_stills_first_and_origins_are_normalised() -> None:
    evidence = evidence_of(throw_incident(), {FACADE.key: FACADE}.get)
    assert [w.role for w in wanted(evidence)] == ["snapshot", "pre_clip", "post_clip", "clip"]
    assert origin("http://Frigate.test:5000/api/x") == "http://frigate.test:5000"
    assert origin("https://nvr.example/a") == "https://nvr.example:443"
    assert origin("file:///etc/passwd") is None and origin("http://[::1") is None


def package(tmp_path: Path) -> Path:
    """An archive as the exporter writes it: the incident chained, its export record last, two media files."""
    alerts = AlertStore(tmp_path / "alerts.db")
    incidents, chain = IncidentStore(alerts), ChainStore(alerts, lambda i: evidence_of(i, {FACADE.key: FACADE}.get))
    incident = throw_incident()
    incidents.save(incident)
    chain.follow(incident)
    media = []
    for name, data in (("snapshot", b"\xff\xd8 a jpeg"), ("clip", b"\x00\x00\x00\x18ftypmp42 a clip")):
        path = tmp_path / f"{name}.part"
        path.write_bytes(data)
        media.append(Fetched(Wanted(THROW_ID, name, f"{API}/{name}", T0), path, sha256_file(path), len(data), None))
    evidence = evidence_of(incident, {FACADE.key: FACADE}.get)
    import hashlib

    from hub.incidents.chain import canonical
    stored = json.loads(dump(incident))
    missing = [Missing(Wanted(THROW_ID, "pre_clip", f"{API}/pre", T0), "the media server answered 404")]
    record = {"type": "export", "key": "x-1", "at_ms": T0, "by": "王警官", "role": "police",
              "incident_sha256": hashlib.sha256(canonical(stored).encode()).hexdigest(),
              "evidence_sha256": hashlib.sha256(canonical(evidence).encode()).hexdigest(),
              "media": chain.seal_links(incident.id, [m.to_json() for m in media]),
              "missing": chain.seal_links(incident.id, [m.to_json() for m in missing])}
    [last] = chain.append(incident.id, [record])
    links = chain.links(incident.id)
    salt = chain.salt(incident.id)
    assert salt is not None
    manifest = {"format": "smarthub-evidence/1", "export_id": "x-1", "incident": incident.to_json(), "stored": stored,
                "evidence": evidence, "media": [m.to_json() for m in media],
                "missing": [m.to_json() for m in missing], "chain": {"length": len(links), "head": last.hash},
                "personal": {"salt": salt.hex(), "values": personal_values(links, incident, salt)}}
    out = tmp_path / "evidence.zip"
    write_archive(out, manifest, links, media)
    alerts.close()
    AuditLog(tmp_path / "audit.db").close()
    return out


def rewritten(archive: Path, name: str, change) -> Path:  # type: ignore[no-untyped-def]
    """A copy of the archive with one entry changed (or removed, when `change` gives None)."""
    out = archive.with_name(f"tampered-{name.replace('/', '_')}.zip")
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == name:
                data = change(data)
                if data is None:
                    continue
            dst.writestr(info.filename, data)
    return out


def test_an_untouched_archive_verifies(tmp_path: Path) -> None:
    verdict = verify_archive(package(tmp_path))
    assert verdict.ok, verdict.problems
    assert verdict.length > 5


def _manifest_edit(edit):  # type: ignore[no-untyped-def]
    def change(data: bytes) -> bytes:
        manifest = json.loads(data)
        edit(manifest)
        return json.dumps(manifest, ensure_ascii=False).encode()
    return change


def _chain_edit(data: bytes) -> bytes:
    lines = data.decode().splitlines()
    link = json.loads(lines[1])
    record = json.loads(link["record"])
    record["title"] = "无事"
    link["record"] = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    lines[1] = json.dumps(link, ensure_ascii=False)
    return ("\n".join(lines) + "\n").encode()


def _linked(manifest: dict) -> dict:  # type: ignore[type-arg]
    """The fields of the first stored part that carries a snapshot link."""
    return next(p["fields"] for p in manifest["stored"]["parts"] if "snapshot" in p["fields"])


@pytest.mark.parametrize(("entry", "change", "found"), [
    ("media/1800000000.5-zz99yy_high_altitude_throw-snapshot.jpg", lambda d: d + b"!", "changed"),
    ("media/1800000000.5-zz99yy_high_altitude_throw-clip.mp4", lambda d: None, "removed"),
    ("chain.jsonl", _chain_edit, "its hash does not match"),
    ("chain.jsonl", lambda d: b"\n".join(d.splitlines()[:-1]) + b"\n", "does not end in this export"),
    ("manifest.json", _manifest_edit(lambda m: m["stored"]["parts"][1]["fields"].update(start_top_px=900.0)),
     "stored differs"),
    ("manifest.json", _manifest_edit(lambda m: m["incident"].update(title="无事")), "manifest's incident differs"),
    ("manifest.json", _manifest_edit(lambda m: m["evidence"]["detections"][0]["floors"].update(band="2-3")),
     "evidence is not the one"),
    ("manifest.json", _manifest_edit(lambda m: m["missing"].clear()), "media list differs"),
    ("manifest.json", lambda d: b"{not json", "not a readable evidence archive"),
    ("manifest.json", _manifest_edit(lambda m: _linked(m).update(snapshot="http://frigate:5000/other.jpg")),
     "personal field 'snapshot' differs from the chained digest"),
    ("manifest.json", _manifest_edit(lambda m: m["personal"]["values"][0].update(value="http://elsewhere/x.jpg")),
     "manifest's personal values"),
    ("manifest.json", _manifest_edit(lambda m: m["personal"].update(salt="00" * 32)), "differs from the chained"),
    ("manifest.json", _manifest_edit(lambda m: m["personal"].update(salt=None)), "no salt to check them with"),
    ("manifest.json", _manifest_edit(lambda m: m["media"][0].update(url="http://elsewhere/x.jpg")),
     "media list differs"),
])
def test_a_changed_archive_entry_is_found(tmp_path: Path, entry: str, change, found: str) -> None:  # type: ignore[no-untyped-def]
    verdict = verify_archive(rewritten(package(tmp_path), entry, change))
    assert not verdict.ok and any(found in p for p in verdict.problems), verdict.problems


def test_a_file_added_to_the_archive_is_found(tmp_path: Path) -> None:
    archive = package(tmp_path)
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr("media/extra.jpg", b"planted")
    verdict = verify_archive(archive)
    assert any("media/extra.jpg: in the archive but not in the export record" in p for p in verdict.problems)
