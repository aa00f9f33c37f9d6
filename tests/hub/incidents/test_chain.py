"""The incidents' hash chain: kept as the desk saves each version, and any later edit of a stored incident or of
the chain itself shows when it is verified."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from devices import REGISTRY as KINDS
from devices.access import FAULTS
from hub.alerts.models import acknowledge, open_alert
from hub.alerts.store import AlertStore
from hub.incidents.chain import (
    GENESIS,
    ChainStore,
    canonical,
    digest,
    new_salt,
    sealed,
    sealed_evidence,
    sealed_links,
    verify,
    verify_links,
)
from hub.incidents.desk import IncidentDesk
from hub.incidents.merge import Incident, alert_part, event_part, place, places_of, with_alert
from hub.incidents.retention import forget_personal, personal_of
from hub.incidents.store import IncidentStore
from hub.registry import Device, Registry

pytestmark = pytest.mark.unit

T0 = 1_800_000_000_000
WINDOW = 300_000
DOOR = Device(site="sunshine", kind="access", device="door-3", place="east-entrance")
CAM = Device(site="sunshine", kind="camera", device="cam-1", sees=["door-3"])


@pytest.fixture
def stores(tmp_path: Path):  # type: ignore[no-untyped-def]
    alerts = AlertStore(tmp_path / "alerts.db")
    yield alerts, IncidentStore(alerts), ChainStore(alerts, clock=lambda: T0)
    alerts.close()


def versions() -> list[Incident]:
    """A forced door, a camera's detection joining, the alert acknowledged: three versions of one incident."""
    alert = open_alert("sunshine", "access", "door-3", "door_forced", FAULTS["door_forced"], None, T0)
    first = place([], alert_part(alert, places_of(DOOR, "door-3")), WINDOW)
    assert first is not None
    seen = event_part("sunshine", "camera", "cam-1", "d1", T0 + 1000, "detection", places_of(CAM, "cam-1"),
                      {"type": "detection", "id": "d1", "label": "person", "score": 0.9})
    second = place([first], seen, WINDOW)
    assert second is not None
    third = with_alert(second, acknowledge(alert, "张三", "on my way", T0 + 5000))
    return [first, second, third]


def keep(incident: Incident, incidents: IncidentStore, chain: ChainStore) -> int:
    """As the hub does: the desk saves, then the chain follows the saved version."""
    incidents.save(incident)
    return chain.follow(incident)


def test_each_link_is_the_sha256_of_the_previous_hash_and_the_records_canonical_text(stores) -> None:  # type: ignore[no-untyped-def]
    _, incidents, chain = stores
    incident = versions()[0]
    keep(incident, incidents, chain)
    links = chain.links(incident.id)
    assert links[0].prev == GENESIS and [link.seq for link in links] == list(range(len(links)))
    prev = GENESIS
    for link in links:  # the formula the README gives, computed here without the module
        text = json.dumps(json.loads(link.text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert text == link.text and link.prev == prev
        assert link.hash == hashlib.sha256(prev.encode() + text.encode()).hexdigest()
        prev = link.hash
    assert {link.record["type"] for link in links} == {"incident", "part", "entry"}
    assert verify(links, incidents.get(incident.id)).ok


def test_only_what_is_new_in_a_version_is_appended(stores) -> None:  # type: ignore[no-untyped-def]
    _, incidents, chain = stores
    first, second, third = versions()
    assert keep(first, incidents, chain) == 3  # header, the alert's part, its timeline entry
    assert keep(first, incidents, chain) == 0  # the same version again: nothing
    assert keep(second, incidents, chain) == 3  # the header (places grew), the detection, its entry
    appended = keep(third, incidents, chain)  # the alert's part (acknowledged), the entry, the header (people)
    assert appended == 3
    records = [link.record for link in chain.links(first.id)]
    assert [r["state"] for r in records if r["type"] == "part" and r["source"] == "alert"] == ["open", "acknowledged"]
    assert verify(chain.links(first.id), incidents.get(first.id)).ok


def test_a_chain_read_back_after_a_restart_goes_on_without_repeating_records(stores, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alerts, incidents, chain = stores
    first, second, third = versions()
    keep(first, incidents, chain)
    keep(second, incidents, chain)
    again = ChainStore(alerts)  # a new hub process on the same file: nothing of the chain in memory
    assert again.follow(second) == 0
    incidents.save(third)
    assert again.follow(third) == 3
    assert verify(again.links(first.id), incidents.get(first.id)).ok


def _tampered(alerts: AlertStore, sql: str, *args: object) -> None:
    """An edit made under the hub, straight in its SQLite file (as someone with the file could)."""
    db = sqlite3.connect(alerts._db.execute("PRAGMA database_list").fetchone()[2])
    with db:
        db.execute(sql, args)
    db.close()


def _stored_body(alerts: AlertStore, incident_id: str) -> dict:  # type: ignore[type-arg]
    return json.loads(alerts._db.execute("SELECT body FROM incidents WHERE id = ?", (incident_id,)).fetchone()[0])


@pytest.mark.parametrize(("edit", "found"), [
    (lambda body: body["parts"][1]["fields"].update(label="fall"), "part 1:d1: stored differs"),
    (lambda body: body["timeline"][0].update(by="nobody"), "stored but never chained"),
    (lambda body: body["timeline"].pop(), "chained but no longer stored"),
    (lambda body: body["parts"].pop(), "chained but no longer stored (removed)"),
    (lambda body: body.update(title="没什么"), "incident"),
    (lambda body: body.update(people=[]), "stored differs"),
])
def test_an_edit_to_the_stored_incident_shows(stores, edit, found: str) -> None:  # type: ignore[no-untyped-def]
    alerts, incidents, chain = stores
    made = versions()
    for version in made:
        keep(version, incidents, chain)
    incident_id = made[0].id
    body = _stored_body(alerts, incident_id)
    edit(body)
    _tampered(alerts, "UPDATE incidents SET body = ? WHERE id = ?", json.dumps(body, ensure_ascii=False), incident_id)
    verdict = verify(chain.links(incident_id), incidents.get(incident_id))
    assert not verdict.ok and any(found in p for p in verdict.problems), verdict.problems


def test_an_edit_to_the_chain_itself_shows(stores) -> None:  # type: ignore[no-untyped-def]
    alerts, incidents, chain = stores
    made = versions()
    for version in made:
        keep(version, incidents, chain)
    incident_id = made[0].id
    links = chain.links(incident_id)
    record = links[2].record | {"by": "nobody"}
    _tampered(alerts, "UPDATE incident_chain SET record = ? WHERE incident_id = ? AND seq = 2",
              canonical(record), incident_id)
    assert "record 2: its hash does not match its text" in " ".join(verify_links(chain.links(incident_id)).problems)
    _tampered(alerts, "DELETE FROM incident_chain WHERE incident_id = ? AND seq = 4", incident_id)
    problems = verify(chain.links(incident_id), incidents.get(incident_id)).problems
    assert any("numbered" in p for p in problems) and any("does not follow" in p for p in problems)


def test_an_evidence_record_is_chained_when_the_evidence_changes(tmp_path: Path) -> None:
    alerts = AlertStore(tmp_path / "alerts.db")
    try:
        incidents = IncidentStore(alerts)
        chain = ChainStore(alerts, evidence=lambda i: {"parts": len(i.parts)})
        first, second, third = versions()
        for version in (first, second, third):
            keep(version, incidents, chain)
        evidence = [r.record for r in chain.links(first.id) if r.record["type"] == "evidence"]
        assert [e["parts"] for e in evidence] == [1, 2]  # the ack changed no part count: no new record
        assert verify(chain.links(first.id), incidents.get(first.id)).ok
    finally:
        alerts.close()


def test_a_chain_goes_with_its_incident(stores) -> None:  # type: ignore[no-untyped-def]
    """A chain holds the events' fields (personal data): once retention deletes the incident, the chain goes at
    the next personal-data sweep, and nothing else's chain does."""
    alerts, incidents, chain = stores
    kept, gone = versions()[0], versions()[0]
    for incident in (kept, gone):
        keep(incident, incidents, chain)
    _tampered(alerts, "DELETE FROM incidents WHERE id = ?", gone.id)
    assert chain.forget_orphans() == 3
    assert chain.links(gone.id) == [] and len(chain.links(kept.id)) == 3


def test_an_edited_part_is_not_made_legitimate_by_a_later_change_through_the_hub(stores) -> None:  # type: ignore[no-untyped-def]
    """A resolved incident is read back from its row when a late note comes: an edit made in that row must not
    ride into the chain with the note."""
    alerts, incidents, chain = stores
    made = versions()
    for version in made:
        keep(version, incidents, chain)
    incident_id = made[0].id
    body = _stored_body(alerts, incident_id)
    body["parts"][1]["fields"]["label"] = "fall"
    _tampered(alerts, "UPDATE incidents SET body = ? WHERE id = ?", json.dumps(body, ensure_ascii=False), incident_id)
    restarted = ChainStore(alerts, clock=lambda: T0)
    edited = incidents.get(incident_id)
    assert edited is not None
    later = with_alert(edited, acknowledge(open_alert("sunshine", "access", "door-3", "door_forced",
                                                      FAULTS["door_forced"], None, T0), "李四", "late note", T0 + 9000))
    incidents.save(later)
    restarted.follow(later)
    problems = verify(restarted.links(incident_id), incidents.get(incident_id)).problems
    assert any("part 1:d1: stored differs" in p for p in problems), problems


GATE = Device(site="sunshine", kind="gate", device="lane-2", place="east-entrance")
PLATE = "琼A12345"
PASSAGE = {"type": "passage", "id": "p1", "plate": PLATE, "direction": "in", "decision": "allowed",
           "image": "http://nvr.local/lane-2/p1.jpg"}
DAY_MS = 86_400_000


def with_passage(fields: dict | None = None) -> list[Incident]:  # type: ignore[type-arg]
    """The forced door's versions, then a gate passage with its plate joining it."""
    made = versions()
    part = event_part("sunshine", "gate", "lane-2", "p1", T0 + 2000, "passage", places_of(GATE, "lane-2"),
                      dict(fields or PASSAGE))
    joined = place([made[-1]], part, WINDOW)
    assert joined is not None
    return [*made, joined]


def test_personal_values_are_chained_as_digests_salted_per_incident(stores) -> None:  # type: ignore[no-untyped-def]
    alerts, incidents, chain = stores
    for version in with_passage():
        keep(version, incidents, chain)
    incident_id = versions()[0].id  # another incident (a new id), the same plate
    other = with_passage()
    for version in other:
        keep(version, incidents, chain)
    texts = " ".join(link.text for i in (incident_id, other[0].id) for link in chain.links(i))
    assert PLATE not in texts and "nvr.local" not in texts
    [part] = [r.record for r in chain.links(other[0].id) if r.record.get("device") == "lane-2"]
    salt = chain.salt(other[0].id)
    assert salt is not None and len(salt) == 32
    assert part["personal"] == ["image", "plate"] and part["fields"]["direction"] == "in"
    by_hand = hashlib.sha256(salt + json.dumps(PLATE, ensure_ascii=False).encode()).hexdigest()  # the README's
    assert part["fields"]["plate"] == {"sha256": by_hand}
    assert digest(salt, PLATE) != digest(new_salt(), PLATE)  # the same plate, unlinkable across incidents
    verdict = verify(chain.links(other[0].id), incidents.get(other[0].id), salt)
    assert verdict.ok and verdict.forgotten == [], verdict.problems
    assert not verify(chain.links(other[0].id), incidents.get(other[0].id), None).ok  # a plate, no salt: unchecked


def _retained(alerts: AlertStore, incidents: IncidentStore, chain: ChainStore, now_ms: int) -> IncidentDesk:
    """Retention as the hub runs it, with the chain's salts deleted in its transaction."""
    desk = IncidentDesk(incidents, Registry(devices=[DOOR, CAM, GATE]), lambda i: None, window_s=300)
    forget_personal(desk, now_ms, personal_of(KINDS), chain.unsalt)
    return desk


def test_a_part_retention_forgot_verifies_with_a_note_and_the_salt_goes(stores) -> None:  # type: ignore[no-untyped-def]
    alerts, incidents, chain = stores
    made = with_passage()
    for version in made:
        keep(version, incidents, chain)
    incident_id = made[0].id
    _retained(alerts, incidents, chain, T0 + DAY_MS)
    stored = incidents.get(incident_id)
    assert stored is not None and PLATE not in str(stored) and chain.salt(incident_id) is None
    verdict = chain.verdict(incident_id, stored)
    assert verdict.ok, verdict.problems
    assert verdict.forgotten == ["2:p1"] and verdict.to_json()["forgotten"] == ["2:p1"]
    assert keep(stored, incidents, chain) == 0  # the forgotten version is never chained
    raw = _raw_rows(alerts, "SELECT * FROM incident_chain") + _raw_rows(alerts, "SELECT * FROM incident_chain_salt")
    assert PLATE.encode() not in raw and b"nvr.local" not in raw


def test_an_incident_still_holding_a_plate_keeps_its_salt(stores) -> None:  # type: ignore[no-untyped-def]
    alerts, incidents, chain = stores
    made = with_passage()
    late = event_part("sunshine", "gate", "lane-2", "p2", T0 + 3 * DAY_MS, "passage", places_of(GATE, "lane-2"),
                      dict(PASSAGE, id="p2"))
    made.append(replace(made[-1], parts=(*made[-1].parts, late)))
    for version in made:
        keep(version, incidents, chain)
    _retained(alerts, incidents, chain, T0 + DAY_MS)  # the first passage is old, the second is not
    assert chain.salt(made[0].id) is not None  # the second plate is still checked against its digest
    verdict = chain.verdict(made[0].id, incidents.get(made[0].id))
    assert verdict.ok and verdict.forgotten == ["2:p1"], verdict.problems


def _raw_rows(alerts: AlertStore, sql: str) -> bytes:
    return repr(alerts._db.execute(sql).fetchall()).encode("utf-8", "backslashreplace") + "".join(
        str(v) for row in alerts._db.execute(sql).fetchall() for v in row).encode()


def _edit_part(alerts: AlertStore, incident_id: str, change) -> None:  # type: ignore[no-untyped-def]
    body = _stored_body(alerts, incident_id)
    [part] = [p for p in body["parts"] if p["device"] == "lane-2"]
    change(part["fields"])
    _tampered(alerts, "UPDATE incidents SET body = ? WHERE id = ?", json.dumps(body, ensure_ascii=False), incident_id)


@pytest.mark.parametrize(("retained", "change", "found"), [
    (False, lambda f: f.update(plate="琼B99999"), "personal field 'plate' differs from the chained digest"),
    (False, lambda f: f.update(direction="out"), "stored differs"),
    (False, lambda f: f.pop("plate"), "without its personal field 'plate' but not forgotten"),
    (False, lambda f: f.update(forgotten=True), "marked forgotten but keeps every personal field"),
    (False, lambda f: (f.pop("plate"), f.pop("image"), f.update(forgotten=True, decision="denied")), "stored differs"),
    (True, lambda f: f.update(direction="out"), "stored differs"),
    (True, lambda f: f.update(forgotten=False), "stored differs"),
    (True, lambda f: f.update(plate=PLATE), "salt is gone (cannot be checked)"),
    (True, lambda f: f.update(plate={"sha256": "0" * 64}), "salt is gone"),
])
def test_tampering_shows_before_and_after_retention(stores, retained: bool, change, found: str) -> None:  # type: ignore[no-untyped-def]
    alerts, incidents, chain = stores
    made = with_passage()
    for version in made:
        keep(version, incidents, chain)
    incident_id = made[0].id
    if retained:
        _retained(alerts, incidents, chain, T0 + DAY_MS)
    _edit_part(alerts, incident_id, change)
    verdict = chain.verdict(incident_id, incidents.get(incident_id))
    assert not verdict.ok and any(found in p for p in verdict.problems), verdict.problems


def test_a_removed_forgotten_part_shows(stores) -> None:  # type: ignore[no-untyped-def]
    alerts, incidents, chain = stores
    made = with_passage()
    for version in made:
        keep(version, incidents, chain)
    _retained(alerts, incidents, chain, T0 + DAY_MS)
    body = _stored_body(alerts, made[0].id)
    body["parts"].pop()
    _tampered(alerts, "UPDATE incidents SET body = ? WHERE id = ?", json.dumps(body, ensure_ascii=False), made[0].id)
    problems = chain.verdict(made[0].id, incidents.get(made[0].id)).problems
    assert any("part 2:p1: chained but no longer stored (removed)" in p for p in problems), problems


def test_sealing_is_pure_and_leaves_other_kinds_and_fields_alone() -> None:
    record = {"type": "part", "fields": {"plate": PLATE, "direction": "in"}}
    salt = b"\x01" * 32
    out = sealed(record, salt, frozenset({"plate", "image"}))
    assert out["fields"] == {"plate": digest(salt, PLATE), "direction": "in"} and out["personal"] == ["plate"]
    assert record["fields"]["plate"] == PLATE  # not changed in place
    assert sealed(record, salt, None)["fields"] == record["fields"] and sealed(record, salt, None)["personal"] == []
    evidence = sealed_evidence({"detections": [{"id": "d", "media": {"snapshot": "http://x/1.jpg"}}]}, salt)
    assert evidence["detections"][0]["media"] == {"snapshot": digest(salt, "http://x/1.jpg")}
    assert sealed_links([{"url": "http://x/1.jpg", "sha256": "ab"}], salt) == [
        {"url": digest(salt, "http://x/1.jpg"), "sha256": "ab"}]


def test_a_salt_is_kept_only_once_a_record_holds_a_digest(stores) -> None:  # type: ignore[no-untyped-def]
    _, incidents, chain = stores
    first, second, third = versions()  # a forced door and a detection without media: nothing personal
    for version in (first, second, third):
        keep(version, incidents, chain)
    assert chain.salt(first.id) is None
    part = event_part("sunshine", "gate", "lane-2", "p1", T0 + 2000, "passage", places_of(GATE, "lane-2"),
                      dict(PASSAGE))
    joined = place([third], part, WINDOW)
    assert joined is not None and joined.id == first.id
    keep(joined, incidents, chain)
    salt = chain.salt(first.id)
    assert salt is not None and chain.verdict(first.id, incidents.get(first.id)).ok
    chain.forget_cached()  # a restart: the same salt is read back, nothing is chained again
    assert keep(joined, incidents, chain) == 0 and chain.salt(first.id) == salt
