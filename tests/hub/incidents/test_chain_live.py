"""A running hub's hash chains keep no personal value: a forced door with a car's passage and a resident's
access joins one incident, its chain holds their plate and subject only as salted digests, an export gives
police the values and the salt to check them, and once the retention has passed (a clock the test moves) the
chain still verifies, the salt is gone, the alerts file holds neither value anywhere, and an edit to a part
retention forgot still shows."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from hub.config import Settings
from hub.incidents.export import verify_archive
from tests.support.hub_fixtures import eventually, running_hub
from tests.support.mqtt_fixtures import Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]

REGISTRY = """
[[devices]]
site = "sunshine"
kind = "access"
device = "door-3"
place = "east-entrance"

[[devices]]
site = "sunshine"
kind = "gate"
device = "lane-2"
place = "east-entrance"
"""
PLATE = "琼A12345"
SUBJECT = "p-7f3a9c0d"
PASSAGE = {"type": "passage", "plate": PLATE, "plate_color": "blue", "direction": "in", "lane": "2",
           "vehicle_class": "car", "confidence": 0.97, "decision": "allowed", "category": "resident", "id": "p1",
           "image": "http://nvr.local/lane-2/p1.jpg"}
ACCESS = {"type": "access", "method": "face", "subject": SUBJECT, "result": "granted", "id": "a1",
          "image": "http://nvr.local/door-3/a1.jpg"}
DAY_MS = 86_400_000


def _vacuumed(path: Path, into: Path) -> bytes:
    """Every byte of the live data in the SQLite file (a copy without free pages or WAL leftovers)."""
    db = sqlite3.connect(path)
    db.execute("VACUUM INTO ?", (str(into),))
    db.close()
    return into.read_bytes()


def _chain_rows(path: Path, incident_id: str) -> tuple[bytes, int]:
    db = sqlite3.connect(path)
    rows = db.execute("SELECT * FROM incident_chain WHERE incident_id = ?", (incident_id,)).fetchall()
    salts = db.execute("SELECT count(*) FROM incident_chain_salt WHERE incident_id = ?", (incident_id,)).fetchone()
    db.close()
    return "\n".join("|".join(map(str, row)) for row in rows).encode(), salts[0]


async def test_a_chain_keeps_no_plate_past_the_retention_and_still_verifies(
        settings_for: Callable[..., Settings], mosquitto: Broker, tmp_path: Path) -> None:
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY, encoding="utf-8")
    settings = settings_for("embedded", registry=registry, personal_retention_days=30)
    db_path = settings.data_dir / "alerts.db"
    async with running_hub(settings, mosquitto) as run:
        await run.publish(run.topic("access", "door-3", "event"), {"type": "fault", "code": "door_forced",
                                                                   "active": True})
        await eventually(lambda: run.hub.incidents.active, what="the incident")
        await run.publish(run.topic("gate", "lane-2", "event"), PASSAGE)
        await run.publish(run.topic("access", "door-3", "event"), ACCESS)

        async def with_both() -> str | None:
            found = (await run.api.get("/api/incidents")).json()
            return found[0]["id"] if found and {"p1", "a1"} <= set(found[0]["events"]) else None

        incident_id = await eventually(with_both, what="the passage and the access in the incident")
        await run.stored()
        police = {"Authorization": f"Bearer {run.hub.users.add('王警官', 'police')}"}

        chain = (await run.api.get(f"/api/incidents/{incident_id}/chain", headers=police)).json()
        assert chain["ok"] and chain["forgotten"] == [], chain
        rows, salts = _chain_rows(db_path, incident_id)
        assert salts == 1 and rows and PLATE.encode() not in rows and SUBJECT.encode() not in rows
        assert b"nvr.local" not in rows  # the pictures' links are personal too

        exported = await run.api.post(f"/api/incidents/{incident_id}/export", headers=police)
        assert exported.status_code == 200, exported.text
        archive = tmp_path / "evidence.zip"
        archive.write_bytes(exported.content)
        assert verify_archive(archive).ok, verify_archive(archive).problems
        with zipfile.ZipFile(io.BytesIO(exported.content)) as z:
            manifest = json.loads(z.read("manifest.json"))
            links = [json.loads(line) for line in z.read("chain.jsonl").decode().splitlines()]
        salt = bytes.fromhex(manifest["personal"]["salt"])
        [plate] = [v for v in manifest["personal"]["values"] if v["field"] == "plate"]
        part = next(json.loads(link["record"]) for link in reversed(links)
                    if json.loads(link["record"]).get("key") == plate["part"])
        by_hand = hashlib.sha256(salt + json.dumps(PLATE, ensure_ascii=False).encode()).hexdigest()  # the README's
        assert plate["value"] == PLATE and part["fields"]["plate"] == {"sha256": by_hand} == {"sha256": plate["sha256"]}
        assert {v["value"] for v in manifest["personal"]["values"]} >= {PLATE, SUBJECT}

        now_ms = int(time.time() * 1000)
        await run.hub.forget_personal_data(now_ms=now_ms + 29 * DAY_MS)  # within the retention: all kept
        assert _chain_rows(db_path, incident_id)[1] == 1
        await run.hub.forget_personal_data(now_ms=now_ms + 31 * DAY_MS)
        chain = (await run.api.get(f"/api/incidents/{incident_id}/chain", headers=police)).json()
        assert chain["ok"], chain["problems"]
        assert sorted(chain["forgotten"]) == sorted(f"{i}:{ref}" for i, ref in enumerate(
            p["ref"] for p in (await run.api.get(f"/api/incidents/{incident_id}")).json()["parts"])
            if ref in ("p1", "a1"))
        rows, salts = _chain_rows(db_path, incident_id)
        assert salts == 0, "the salt outlived the values it could link the digests to"
        run.hub.pipeline.flush()
        whole = _vacuumed(db_path, tmp_path / "copy.db")
        assert PLATE.encode() not in whole and SUBJECT.encode() not in whole and b"nvr.local" not in whole
        assert PLATE.encode() not in rows and SUBJECT.encode() not in rows

        later = await run.api.post(f"/api/incidents/{incident_id}/export", headers=police)  # a later export
        assert later.status_code == 200, later.text
        archive = tmp_path / "later.zip"
        archive.write_bytes(later.content)
        verdict = verify_archive(archive)
        assert verdict.ok and len(verdict.forgotten) == 2, verdict.problems
        with zipfile.ZipFile(archive) as z:
            assert json.loads(z.read("manifest.json"))["personal"] | {"digest": None} == {
                "salt": None, "values": [], "digest": None}
        assert _chain_rows(db_path, incident_id)[1] == 0, "an export brought a salt back for nothing"

        # Someone with the file turns the car round in a part retention forgot: the chain still shows it.
        db = sqlite3.connect(db_path)
        body = json.loads(db.execute("SELECT body FROM incidents WHERE id = ?", (incident_id,)).fetchone()[0])
        [passage] = [p for p in body["parts"] if p["ref"] == "p1"]
        assert passage["fields"]["forgotten"] is True and passage["fields"]["direction"] == "in"
        passage["fields"]["direction"] = "out"
        with db:
            db.execute("UPDATE incidents SET body = ? WHERE id = ?", (orjson.dumps(body).decode(), incident_id))
        db.close()
        chain = (await run.api.get(f"/api/incidents/{incident_id}/chain", headers=police)).json()
        assert not chain["ok"] and any("p1: stored differs" in p for p in chain["problems"]), chain
