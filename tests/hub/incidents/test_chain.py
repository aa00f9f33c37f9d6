"""The incidents' hash chain: kept as the desk saves each version, and any later edit of a stored incident or of
the chain itself shows when it is verified."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from devices.access import FAULTS
from hub.alerts.models import acknowledge, open_alert
from hub.alerts.store import AlertStore
from hub.incidents.chain import GENESIS, ChainStore, canonical, verify, verify_links
from hub.incidents.merge import Incident, alert_part, event_part, place, places_of, with_alert
from hub.incidents.store import IncidentStore
from hub.registry import Device

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
