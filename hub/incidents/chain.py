"""A SHA-256 hash chain over an incident's records, so an edit made after the fact shows.

Every version of an incident the desk saves is followed here (`ChainStore.follow`, an `IncidentChanged`
listener): what is new in it (its header, a part joined or changed state, a timeline entry, the evidence
computed from it) is appended as one record each, and each record's hash is

    sha256(previous hash, as 64 lowercase hex characters in ASCII  +  the record's canonical JSON)

with 64 zeros before the first. Canonical JSON is UTF-8, keys sorted, no whitespace (Python's
`json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`), and the stored and exported
text is exactly the hashed bytes, so any tool can check it. `verify` checks the links and then that the stored
incident is what the chain says: every part and the header as their latest chained version, every timeline
entry chained, nothing chained missing. A stored incident edited in its SQLite row, or a chain row changed,
fails one or the other. Someone who rewrites the whole chain consistently is caught only by an anchor kept
elsewhere: every export's audit entry keeps the chain's head (hub/incidents/evidence.py).

The incident's `last_ms` and `anchor_ms` are bookkeeping computed from its parts and actions and are not chained.
A part changed in anything but its alert's state (the only change merging makes) is never chained as a new
version, even when the hub saves it again (a late note on a resolved incident read back from its edited row):
so an edit of a part's fields keeps failing verification however the incident goes on.

Personal values (each kind's `personal` fields: plates, access subjects, id tags, picture and clip links) are
never chained as they are: a part record holds `{"sha256": hex}` in their place, the SHA-256 of the incident's
salt (32 random bytes, table `incident_chain_salt`) followed by the value's canonical JSON, and lists their names
in `personal`; the evidence record holds its media links the same way, an export record its media's `url`s.
While the values are stored they are checked against the digests; once retention drops them from a part
(`forgotten: true`, hub/incidents/retention.py) that part verifies on the rest of its fields and is listed in
the verdict's `forgotten`, and when the incident holds no personal value any more its salt is deleted, so the
chain keeps no plate, not even one that could be found again by hashing every plate.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from devices import REGISTRY
from hub.alerts.store import AlertStore
from hub.incidents.merge import Entry, Incident, Part
from hub.incidents.retention import FORGOTTEN, Personal, personal_of

GENESIS = "0" * 64
VERSIONED = frozenset({"incident", "part"})
"""Record types that stand for something in the stored incident whose latest version must match it; `entry`
records are matched one for one; `evidence` and `export` records say what the hub computed and gave out."""
FOLLOWED_MAX = 1_000
"""Incidents whose chain state is kept in memory (others are read back from the table when they change)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS incident_chain (
    incident_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    record TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (incident_id, seq)
);
CREATE TABLE IF NOT EXISTS incident_chain_salt (
    incident_id TEXT PRIMARY KEY,
    salt TEXT NOT NULL
);
"""
SALT_BYTES = 32
DIGEST = "sha256"


def canonical(record: Any) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def digest(salt: bytes, value: Any) -> dict[str, str]:
    """A personal value as the chain holds it: `{"sha256": hex of sha256(salt + the value's canonical JSON)}`.

    Salted, because the values are few: a plate is a province, a letter and five or six characters (some 10^10
    in all, far fewer in one city), an estate's access subjects a few hundred, so an unsalted SHA-256 of one is
    found again by hashing every candidate (seconds on a GPU) and would be the plate kept for ever. With 32
    random bytes per incident, the same plate hashes differently in every incident, and once retention deletes
    the salt (when the incident holds no personal value) no amount of trying links a digest to a plate. While
    the salt exists the digest can be checked against a value; so could it be found, but then the value itself
    is still in the incident's row."""
    return {DIGEST: hashlib.sha256(salt + canonical(value).encode("utf-8")).hexdigest()}


def link_hash(prev: str, text: str) -> str:
    return hashlib.sha256(prev.encode("ascii") + text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Link:
    """One chained record: its place, when it was chained, its canonical text and the two hashes."""

    seq: int
    at_ms: int
    text: str
    prev: str
    hash: str

    @property
    def record(self) -> dict[str, Any]:
        return json.loads(self.text)  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at_ms": self.at_ms, "record": self.text, "prev": self.prev, "hash": self.hash}

    @classmethod
    def of(cls, data: dict[str, Any]) -> Link:
        return cls(int(data["seq"]), int(data["at_ms"]), str(data["record"]), str(data["prev"]), str(data["hash"]))


def part_record(part: Part, index: int) -> dict[str, Any]:
    """A part by its place in the incident: the phases of one detection share their ref, and merging only appends
    parts or replaces one where it is. Its fields as stored (see `sealed` for what is chained)."""
    return {"type": "part", "key": f"{index}:{part.ref}", "source": part.source, "site": part.site, "kind": part.kind,
            "device": part.device, "at_ms": part.at_ms, "severity": part.severity.value, "title": part.title,
            "title_en": part.title_en, "places": sorted(part.places), "state": part.state, "fields": part.fields}


def sealed(record: dict[str, Any], salt: bytes, names: frozenset[str] | None) -> dict[str, Any]:
    """A part record as chained: the values of its kind's personal fields replaced by their salted `digest`, and
    `personal` listing those fields (so a verifier needs no list of kinds, and a device's own field that happens
    to look like a digest is never taken for one)."""
    fields = record["fields"]
    hidden = sorted(names & fields.keys()) if names and fields else []
    if not hidden:
        return {**record, "personal": []}
    return {**record, "fields": {**fields, **{n: digest(salt, fields[n]) for n in hidden}}, "personal": hidden}


def sealed_evidence(evidence: dict[str, Any], salt: bytes) -> dict[str, Any]:
    """The evidence as chained: its detections' media links (personal: a still of a face or a car) digested."""
    detections = [{**d, "media": {role: digest(salt, url) for role, url in d.get("media", {}).items()}}
                  for d in evidence.get("detections", ())]
    return {**evidence, "detections": detections}


def sealed_links(items: Sequence[dict[str, Any]], salt: bytes) -> list[dict[str, Any]]:
    """An export's media list as chained: each item's `url` digested (the manifest carries it whole)."""
    return [{**item, "url": digest(salt, item["url"])} if "url" in item else item for item in items]


def entry_record(entry: Entry) -> dict[str, Any]:
    return {"type": "entry", "key": f"{entry.at_ms}:{entry.action}:{entry.ref}", "at_ms": entry.at_ms,
            "by": entry.by, "action": entry.action, "ref": entry.ref, "text": entry.text}


def header_record(incident: Incident) -> dict[str, Any]:
    return {"type": "incident", "key": incident.id, "site": incident.site, "opened_ms": incident.opened_ms,
            "title": incident.title, "title_en": incident.title_en, "places": sorted(incident.places),
            "people": list(incident.people), "orders": list(incident.orders), "more_events": incident.more_events}


def records(incident: Incident) -> list[dict[str, Any]]:
    """What the chain must hold of a stored incident: its header, each part, each timeline entry."""
    return [header_record(incident), *(part_record(p, i) for i, p in enumerate(incident.parts)),
            *(entry_record(e) for e in incident.timeline)]


def extend(prev: str, seq: int, new: Iterable[dict[str, Any]], at_ms: int) -> list[Link]:
    """The links that append `new` after a chain ending in `prev` at `seq` (pure)."""
    out = []
    for record in new:
        text = canonical(record)
        digest = link_hash(prev, text)
        out.append(Link(seq, at_ms, text, prev, digest))
        prev, seq = digest, seq + 1
    return out


@dataclass(slots=True)
class Verdict:
    """What a verification found: `ok` when the links hold and the records match what they are checked against."""

    length: int
    head: str
    problems: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    """Parts whose personal fields retention dropped: a note, not a problem (the rest of them is checked)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "length": self.length, "head": self.head, "problems": self.problems,
                "forgotten": self.forgotten}


def verify_links(links: Sequence[Link]) -> Verdict:
    """Each link's `prev` is the hash before it, its hash is the hash of its text, and seq counts from 0."""
    verdict = Verdict(len(links), links[-1].hash if links else GENESIS)
    prev = GENESIS
    for i, link in enumerate(links):
        if link.seq != i:
            verdict.problems.append(f"record {i}: numbered {link.seq} (a record removed or moved)")
        if link.prev != prev:
            verdict.problems.append(f"record {i}: does not follow the hash before it")
        if link_hash(link.prev, link.text) != link.hash:
            verdict.problems.append(f"record {i}: its hash does not match its text (the record was changed)")
        try:
            if canonical(json.loads(link.text)) != link.text:
                verdict.problems.append(f"record {i}: not in canonical form")
        except ValueError:
            verdict.problems.append(f"record {i}: not JSON")
        prev = link.hash
    return verdict


@dataclass(slots=True)
class State:
    """What a chain holds, as `follow` and `verify` need it: the latest text per versioned key, the entries."""

    head: str = GENESIS
    length: int = 0
    latest: dict[tuple[str, str], str] = field(default_factory=dict)
    entries: Counter[str] = field(default_factory=Counter)
    last_evidence: str | None = None
    seen: frozenset[int] = frozenset()
    """ids of the parts and entries of the version followed last, all chained: merging replaces only what
    changed, so the next version's unchanged objects are skipped without being encoded again."""
    holding: Incident | None = None
    """That version itself, which keeps those objects (and so their ids) alive."""
    salt: bytes | None = None
    """The incident's salt (`digest`); None: none yet, or retention deleted it."""
    salt_saved: bool = True
    """False while a salt made for the next append is not in the table yet."""

    def take(self, link: Link) -> None:
        record = link.record
        kind = record.get("type")
        if kind in VERSIONED:
            self.latest[(kind, str(record.get("key")))] = link.text
        elif kind == "entry":
            self.entries[link.text] += 1
        elif kind == "evidence":
            self.last_evidence = link.text
        self.head, self.length = link.hash, self.length + 1


def state_of(links: Iterable[Link]) -> State:
    state = State()
    for link in links:
        state.take(link)
    return state


def new_records(state: State, incident: Incident, evidence: dict[str, Any] | None,
                personal: Personal) -> list[dict[str, Any]]:
    """What of this version of the incident the chain does not hold yet, personal values digested with the
    state's salt (pure; the state must have one)."""
    seen = state.seen
    salt = state.salt
    assert salt is not None
    out = []
    parts = (sealed(part_record(p, i), salt, personal.get(p.kind)) for i, p in enumerate(incident.parts)
             if id(p) not in seen)
    for record in (header_record(incident), *parts):
        chained = state.latest.get((record["type"], str(record["key"])))
        if chained == canonical(record):
            continue
        if chained is not None and record["type"] == "part" and not _state_change(json.loads(chained), record):
            continue  # merging changes only an alert part's state: anything else was edited under the hub
        out.append(record)
    if seen:  # entries are never changed, only added: one not among the last version's is new
        out.extend(entry_record(e) for e in incident.timeline if id(e) not in seen)
    else:
        entries = Counter(canonical(entry_record(e)) for e in incident.timeline)
        for text, count in entries.items():
            out.extend(json.loads(text) for _ in range(count - state.entries.get(text, 0)))
    if evidence is not None:
        record = {"type": "evidence", "key": incident.id, **sealed_evidence(evidence, salt)}
        if canonical(record) != state.last_evidence:
            out.append(record)
    return out


def _state_change(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a part changed as merging changes one (its alert's state), and in nothing else."""
    return {**before, "state": None} == {**after, "state": None}


def check_part(chained: dict[str, Any], stored: dict[str, Any], salt: bytes | None) -> str | None:
    """How a stored part record differs from its chained version: None when it is that version, FORGOTTEN when it
    is that version with its personal fields dropped by retention (`forgotten: true`, nothing else changed),
    else what differs, in words. A personal value present must hash, with the salt, to the chained digest."""
    hidden = chained.get("personal", [])
    if canonical({**chained, "fields": None, "personal": None}) != canonical({**stored, "fields": None,
                                                                               "personal": None}):
        return "stored differs from its last chained version (edited)"
    fields = stored["fields"]
    forgot = fields.get(FORGOTTEN) is True and FORGOTTEN not in chained["fields"]
    plain = {k: v for k, v in fields.items() if k not in hidden and not (forgot and k == FORGOTTEN)}
    if canonical(plain) != canonical({k: v for k, v in chained["fields"].items() if k not in hidden}):
        return "stored differs from its last chained version (edited)"
    gone = [name for name in hidden if name not in fields]
    if gone and not forgot:
        return f"stored without its personal field {gone[0]!r} but not forgotten by retention (edited)"
    if forgot and not gone:
        return "marked forgotten but keeps every personal field it had (edited)"
    for name in hidden:
        if name not in fields:
            continue
        if salt is None:
            return f"its personal field {name!r} is stored but the incident's salt is gone (cannot be checked)"
        if digest(salt, fields[name]) != chained["fields"][name]:
            return f"its personal field {name!r} differs from the chained digest (edited)"
    return FORGOTTEN if forgot else None


def verify(links: Sequence[Link], incident: Incident | None, salt: bytes | None = None) -> Verdict:
    """The chain's links, then the stored incident against it: every record it holds is the chain's latest
    version (a part's personal values checked against their digests with `salt`, a part retention forgot noted
    in `forgotten`), and nothing the chain holds of it is gone."""
    verdict = verify_links(links)
    if incident is None:
        verdict.problems.append("no stored incident to check the chain against")
        return verdict
    state = state_of(links)
    stored = records(incident)
    keys = set()
    for record in stored:
        if record["type"] not in VERSIONED:
            continue
        key = (record["type"], str(record["key"]))
        keys.add(key)
        chained = state.latest.get(key)
        if chained is None:
            verdict.problems.append(f"{key[0]} {key[1]}: stored but never chained")
        elif record["type"] == "part":
            found = check_part(json.loads(chained), record, salt)
            if found == FORGOTTEN:
                verdict.forgotten.append(key[1])
            elif found is not None:
                verdict.problems.append(f"{key[0]} {key[1]}: {found}")
        elif chained != canonical(record):
            verdict.problems.append(f"{key[0]} {key[1]}: stored differs from its last chained version (edited)")
    for key in set(state.latest) - keys:
        verdict.problems.append(f"{key[0]} {key[1]}: chained but no longer stored (removed)")
    entries = Counter(canonical(r) for r in stored if r["type"] == "entry")
    for text in entries.keys() | state.entries.keys():
        if entries[text] > state.entries[text]:
            verdict.problems.append(f"timeline entry {json.loads(text)['key']}: stored but never chained (edited "
                                    "or added)")
        elif entries[text] < state.entries[text]:
            verdict.problems.append(f"timeline entry {json.loads(text)['key']}: chained but no longer stored "
                                    "(removed or edited)")
    return verdict


def uses_salt(record: dict[str, Any]) -> bool:
    """Whether a record holds a digest: only then is a new salt saved (an incident whose personal values are all
    forgotten gets no salt back from a later record that holds none)."""
    if record.get("personal"):
        return True
    if record.get("type") == "evidence":
        return any(d.get("media") for d in record.get("detections", ()))
    return any(isinstance(item.get("url"), dict) for item in (*record.get("media", ()), *record.get("missing", ()))
               if isinstance(item, dict))


def personal_values(links: Sequence[Link], incident: Incident, salt: bytes | None) -> list[dict[str, Any]]:
    """The personal values the stored incident still holds where its chain has their digests, each with the
    digest it must match: what an export gives police to check by hand (`README`: the evidence package)."""
    latest = state_of(links).latest
    out = []
    for record in records(incident):
        chained = latest.get(("part", str(record["key"])))
        if record["type"] != "part" or chained is None:
            continue
        for name in json.loads(chained).get("personal", []):
            if name in record["fields"]:
                out.append({"part": record["key"], "field": name, "value": record["fields"][name],
                            "sha256": digest(salt, record["fields"][name])[DIGEST] if salt is not None else None})
    return out


class ChainStore:
    """The chains, in the alerts' SQLite file beside the incidents they cover; appended to, never updated. Each
    incident's salt is in a table of its own beside them, so retention can delete it without touching a link."""

    def __init__(self, alerts: AlertStore, evidence: Callable[[Incident], dict[str, Any] | None] = lambda i: None,
                 clock: Callable[[], int] = lambda: int(time.time() * 1000),
                 personal: Personal | None = None) -> None:
        self._db = alerts._db
        self._db.executescript(SCHEMA)
        self.evidence = evidence
        """The evidence an incident carries (None: none), chained whenever it changes."""
        self.clock = clock
        self.personal = personal_of(REGISTRY) if personal is None else personal
        """kind -> the fields whose values are chained as digests (the hub's kinds, plug-ins included)."""
        self._states: OrderedDict[str, State] = OrderedDict()

    def links(self, incident_id: str, upto: int | None = None) -> list[Link]:
        sql = "SELECT seq, at_ms, record, prev, hash FROM incident_chain WHERE incident_id = ?"
        args: tuple[Any, ...] = (incident_id,)
        if upto is not None:
            sql += " AND seq <= ?"
            args += (upto,)
        return [Link(*row) for row in self._db.execute(sql + " ORDER BY seq", args)]

    def salt(self, incident_id: str) -> bytes | None:
        """The incident's salt as stored: None before its first record, and once retention deleted it."""
        row = self._db.execute("SELECT salt FROM incident_chain_salt WHERE incident_id = ?", (incident_id,)).fetchone()
        return bytes.fromhex(row[0]) if row else None

    def verdict(self, incident_id: str, incident: Incident | None) -> Verdict:
        """`verify` of the stored incident against its chain, with its salt."""
        return verify(self.links(incident_id), incident, self.salt(incident_id))

    def _state(self, incident_id: str) -> State:
        state = self._states.get(incident_id)
        if state is None:
            state = state_of(self.links(incident_id))
            state.salt = self.salt(incident_id)
            self._states[incident_id] = state
            while len(self._states) > FOLLOWED_MAX:
                self._states.popitem(last=False)
        self._states.move_to_end(incident_id)
        return state

    def _salted(self, incident_id: str) -> State:
        """The state with a salt: a new one (saved with the next append) if the incident has none."""
        state = self._state(incident_id)
        if state.salt is None:
            state.salt, state.salt_saved = new_salt(), False
        return state

    def follow(self, incident: Incident) -> int:
        """Chain what is new in this version of the incident; returns how many records were appended."""
        state = self._salted(incident.id)
        made = self.append(incident.id, new_records(state, incident, self.evidence(incident), self.personal), state)
        state.seen = frozenset(map(id, (*incident.parts, *incident.timeline)))
        state.holding = incident
        return len(made)

    def append(self, incident_id: str, new: Sequence[dict[str, Any]], state: State | None = None) -> list[Link]:
        """Append records (an export's, say) to an incident's chain, in one transaction."""
        if not new:
            return []
        state = state or self._salted(incident_id)
        made = extend(state.head, state.length, new, self.clock())
        self._db.execute("BEGIN")
        try:
            if not state.salt_saved and state.salt is not None and any(map(uses_salt, new)):
                self._db.execute("INSERT OR REPLACE INTO incident_chain_salt (incident_id, salt) VALUES (?, ?)",
                                 (incident_id, state.salt.hex()))
            self._db.executemany(
                "INSERT INTO incident_chain (incident_id, seq, at_ms, record, prev, hash) VALUES (?,?,?,?,?,?)",
                [(incident_id, m.seq, m.at_ms, m.text, m.prev, m.hash) for m in made])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._states.pop(incident_id, None)  # read back from the table next time, nothing skipped
            raise
        state.salt_saved = state.salt_saved or any(map(uses_salt, new))
        for m in made:
            state.take(m)
        return made

    def seal_links(self, incident_id: str, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """An export's media list as its chained record holds it (`sealed_links`, the incident's salt)."""
        if not items:
            return []
        salt = self._salted(incident_id).salt
        assert salt is not None
        return sealed_links(items, salt)

    def unsalt(self, incident_ids: Sequence[str]) -> None:
        """Delete these incidents' salts (retention, once an incident holds no personal value): their digests
        can no longer be linked to a value by trying every plate. Runs in the caller's transaction."""
        self._db.executemany("DELETE FROM incident_chain_salt WHERE incident_id = ?", [(i,) for i in incident_ids])
        for incident_id in incident_ids:
            self._states.pop(incident_id, None)

    def forget_orphans(self) -> int:
        """Delete the chains (and salts) of incidents no longer stored: a chain lives exactly as long as its
        incident (whose retention decides). Returns the chain rows deleted."""
        gone = self._db.execute("DELETE FROM incident_chain WHERE incident_id NOT IN (SELECT id FROM incidents)")
        self._db.execute("DELETE FROM incident_chain_salt WHERE incident_id NOT IN (SELECT id FROM incidents)")
        self._states.clear()
        return gone.rowcount

    def forget_cached(self) -> None:
        """Drop what is kept in memory (a test that edits the table underneath)."""
        self._states.clear()
