"""One suite every device kind must pass, and the check that the models match docs/CONTRACT.md.

The contract is parsed, not restated here: a kind's section is a list of bullets
(`- telemetry: ...`, `- event <name>: ...`, `- fault codes: ...`), each a list of
backticked field names with an optional note in parentheses. A note that lists
backticked values is an enumeration; `0..1`, `bool`, `int`, `counter` and `default N`
are checked too, and fields not marked `optional` must be required.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import NamedTuple

import annotated_types
import orjson
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

import devices
from devices import REGISTRY
from devices.base import Accepted, CommandArgs, DeviceKind, Severity, StatePayload

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = (ROOT / "docs" / "CONTRACT.md").read_text(encoding="utf-8")
KINDS = sorted(REGISTRY.values(), key=lambda k: k.name)
ALLOWED_TAGS = {"site", "device", "kind", "type", "code", "label", "building"}
# A field, with what follows it in parentheses; or the end of the list (a new sentence).
FIELD = re.compile(r"(optional )?`([a-z0-9_]+)`(?: \(([^()]*)\))?|\.\s+(?=[A-Z])")
TYPES = {"bool": bool, "int": int, "string": str}
VALUE = re.compile(r"`([a-z0-9_]+)`")


class Documented(NamedTuple):
    name: str
    optional: bool
    note: str


def bullets(kind: str) -> dict[str, str]:
    """A kind's bullets by heading ("telemetry", "event passage", "fault codes"), whitespace folded."""
    match = re.search(rf"^### {kind} \(.*?$(.*?)(?=^##)", CONTRACT, re.S | re.M)
    assert match, f"no section for {kind} in docs/CONTRACT.md"
    out = {}
    for bullet in re.split(r"^- ", match.group(1), flags=re.M)[1:]:
        head, _, body = " ".join(bullet.split()).partition(": ")
        out[" ".join(re.sub(r"\([^()]*\)|`", "", head).split())] = body
    return out


def documented(body: str) -> list[Documented]:
    """The fields a bullet lists; `optional` applies to the field it precedes and all after it."""
    out: list[Documented] = []
    optional = False
    for m in FIELD.finditer(body):
        if m.group(2) is None:
            break
        optional = optional or bool(m.group(1))
        out.append(Documented(m.group(2), optional, m.group(3) or ""))
    return out


def enumeration(note: str) -> set[str] | None:
    """The values a note lists, if every comma-separated item starts with one (glosses allowed)."""
    items = [item.strip() for item in note.split(",")]
    if not note or not all(VALUE.match(item) for item in items):
        return None
    return {VALUE.match(item).group(1) for item in items}  # type: ignore[union-attr]


def literal_values(annotation: object) -> set[str]:
    """The strings of a Literal annotation, through Optional."""
    values: set[str] = set()
    for arg in typing.get_args(annotation):
        values |= {arg} if isinstance(arg, str) else literal_values(arg)
    return values


def types_of(info: FieldInfo) -> set[object]:
    return set(typing.get_args(info.annotation)) - {type(None)} or {info.annotation}


def bound(info: FieldInfo, kind: type) -> object:
    return next((getattr(m, kind.__name__.lower()) for m in info.metadata if isinstance(m, kind)), None)


def event_models(kind: DeviceKind) -> dict[str, type[BaseModel]]:
    return {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in kind.events}


def test_every_module_is_registered() -> None:
    building_blocks = {"__init__", "base", "rules", "charging", "charging_control"}  # the charger's allocator, its loop
    modules = {p.stem for p in Path(devices.__file__).parent.glob("*.py")} - building_blocks
    assert modules == set(REGISTRY)
    assert all(name == kind.name for name, kind in REGISTRY.items())


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_event_types_match_the_contract(kind: DeviceKind) -> None:
    heads = bullets(kind.name)
    assert "telemetry" in heads and "fault codes" in heads, f"unexpected bullets {list(heads)}"
    documented_types = {head.split()[1] for head in heads if head.startswith("event ")}
    assert documented_types | {"fault"} == set(kind.event_types)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_fields_match_the_contract(kind: DeviceKind) -> None:
    """Every documented field exists, with its enumeration, bounds, type, default and optionality."""
    models = {"telemetry": kind.telemetry} | {f"event {t}": m for t, m in event_models(kind).items()}
    previous: set[str] | None = None  # for "same values": the enumeration before, in document order
    for head, body in bullets(kind.name).items():
        if head == "fault codes":
            continue
        model = models.get(head)
        assert model is not None, f"{kind.name}: the contract documents {head!r}, the models do not"
        fields = documented(body)
        assert fields, f"{kind.name} {head}: the parser found no fields: has the contract's format changed?"
        for doc in fields:
            where = f"{kind.name} {head} `{doc.name}`"
            info = model.model_fields.get(doc.name)
            assert info is not None, f"{where}: documented, but the model has no such field"
            values = previous if doc.note == "same values" else enumeration(doc.note)
            if values is not None:
                assert literal_values(info.annotation) == values, f"{where}: contract says {sorted(values)}"
                previous = values
            if doc.note == "0..1":
                assert (bound(info, annotated_types.Ge), bound(info, annotated_types.Le)) == (0, 1), where
            if doc.note.startswith("counter"):
                assert types_of(info) == {int} and bound(info, annotated_types.Ge) == 0, where
            for word, type_ in TYPES.items():
                if re.match(rf"{word}\b", doc.note):
                    assert types_of(info) == {type_}, where
            if default := re.search(r"default (\S+)", doc.note):
                assert info.default == json.loads(default.group(1)), where
            # Telemetry is periodic state: a device may send only what changed.
            required = head != "telemetry" and not doc.optional
            assert info.is_required() == required, f"{where}: should be {'required' if required else 'optional'}"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_fault_codes_match_the_contract(kind: DeviceKind) -> None:
    body = bullets(kind.name)["fault codes"]
    codes = {doc.name for doc in documented(body)}
    assert codes, f"no fault codes for {kind.name}"
    if "..." in body:  # charger: a sample of OCPP's ChargePointErrorCode
        assert codes <= set(kind.faults)
    else:
        assert codes == set(kind.faults)


def test_commands_match_the_contract() -> None:
    table = re.search(r"\| kind \| ops \|(.*?)\n\n", CONTRACT, re.S)
    assert table
    rows: dict[str, dict[str, set[str]]] = {}  # a kind's ops over all its rows (an extension adds a row)
    for row in table.group(1).strip().splitlines()[1:]:
        kinds_cell, ops_cell = [c.strip() for c in row.strip("|").split("|")]
        for name in (k.strip() for k in kinds_cell.split(",")):
            ops = rows.setdefault(name, {})
            for doc in documented(ops_cell):
                ops.setdefault(doc.name, set()).update(enumeration(doc.note.removeprefix("args: ")) or set())
    for name, ops in rows.items():
        kind = REGISTRY[name]
        assert set(kind.commands) == set(ops), name
        for op, args in ops.items():
            model = kind.commands[op]
            assert issubclass(model, CommandArgs), f"{name}.{op}: unknown arguments must be refused"
            assert args <= set(model.model_fields), f"{name}.{op} lacks arguments {args}"
            undocumented = {a for a, info in model.model_fields.items() if info.is_required()} - args
            assert not undocumented, f"{name}.{op} requires undocumented arguments {undocumented}"
    assert set(rows) == set(REGISTRY)


def test_state_payload_and_severities_match_the_contract() -> None:
    assert {"online", "fw", "ip", "model"} <= set(StatePayload.model_fields)
    assert StatePayload.model_fields["online"].is_required()
    severities = re.search(r'"severity" \(([a-z|]+)\)', CONTRACT)
    assert severities and set(severities.group(1).split("|")) == set(Severity)


def sections(text: str) -> dict[str, list[str]]:
    """A Markdown text's lines by the heading they sit under ("" before the first)."""
    out: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        if line.startswith("#"):
            current = line
            assert current not in out, f"heading {line!r} twice"
            out[current] = []
        else:
            out[current].append(line)
    return out


def extension_breaks(shared: str, project: str) -> list[str]:
    """What the project's copy changed or dropped of the shared contract (empty: it only adds).

    Each shared section must be in the project's copy under the same heading, in the same order, and its
    lines (prose, bullets, every table row, blank lines) must be there unchanged and in order: the project
    may insert lines (a kind's section, a table row, a paragraph), never edit or remove one."""
    ours = sections(project)
    order = [h for h in ours if h in sections(shared)]
    problems = [f"shared heading {h!r} is missing" for h in sections(shared) if h not in ours]
    if order != [h for h in sections(shared) if h in ours]:
        problems.append("the shared sections are in another order")
    for heading, lines in sections(shared).items():
        remaining = iter(ours.get(heading, ()))
        for number, line in enumerate(lines):
            if not any(line == candidate for candidate in remaining):
                problems.append(f"{heading or 'preamble'}: shared line {number} {line!r} changed, moved or removed")
                break
    return problems


def test_project_copy_of_the_contract_extends_the_shared_one() -> None:
    """The project's copy grows beyond the fixed shared contract (kinds of its own) but keeps all of it."""
    shared = ROOT.parent / "shared" / "CONTRACT.md"
    if not shared.exists():
        pytest.skip("no shared/CONTRACT.md beside the repository")
    assert extension_breaks(shared.read_text(encoding="utf-8"), CONTRACT) == []


def test_an_edited_or_dropped_shared_line_breaks_the_extension() -> None:
    shared = "# T\n\nintro\n\n## 1. Kinds\n\n| kind | ops |\n|---|---|\n| gate | `open` |\n| access | none |\n"
    assert extension_breaks(shared, shared.replace("| access |", "| meter | `valve` |\n| access |")) == []
    assert extension_breaks(shared, shared + "\n## 9. Ours\n\nmore\n") == []
    assert extension_breaks(shared, shared.replace("`open`", "`open`, `close`")), "an edited row"
    assert extension_breaks(shared, shared.replace("| access | none |\n", "")), "a dropped row"
    assert extension_breaks(shared, shared.replace("## 1. Kinds", "## 1. Device kinds")), "a renamed section"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_examples_validate_and_map_to_safe_points(kind: DeviceKind) -> None:
    assert kind.examples.get("event"), "every kind needs example events"
    covered = set()
    for channel, examples in kind.examples.items():
        for example in examples:
            payload = kind.validate(channel, orjson.dumps(example))
            msg = Accepted("s1", kind.name, "d1", channel, payload, 1_000, 1_000, 0, {"building": "3"})
            personal = {str(example[name]) for name in kind.personal if name in example}
            for point in kind.to_points(msg):
                assert set(point.tags) <= ALLOWED_TAGS, point.tags
                assert not set(kind.personal) & set(point.tags), "personal data must never be a tag"
                assert not personal & set(point.tags.values()), "personal data must never be a tag value"
                assert point.fields and point.time_ms == 1_000
            if channel == "event":
                covered.add(example["type"])
    assert covered == set(kind.event_types), "every event type needs an example"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_personal_and_tag_fields_exist_and_tags_are_enumerations(kind: DeviceKind) -> None:
    """A typo in `personal` would leave data unmasked; a free-text tag would explode series cardinality."""
    declared = set(kind.telemetry.model_fields).union(*(m.model_fields for m in kind.events))
    assert set(kind.personal) <= declared
    events = event_models(kind)
    for event_type, names in kind.event_tags.items():
        for name in names:
            assert literal_values(events[event_type].model_fields[name].annotation), f"{event_type}.{name}"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_fault_has_a_severity_and_both_titles(kind: DeviceKind) -> None:
    assert kind.zh.strip() and kind.en.strip()
    for code, spec in kind.faults.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", code)
        assert isinstance(spec.severity, Severity) and spec.zh.strip() and spec.en.strip(), code


def test_a_kind_names_the_dead_letter_reasons_of_its_checks() -> None:
    """A check's refusal is a dead-letter reason like the core's: the kind lists it, so metrics and docs know it."""
    from dataclasses import replace

    from hub.ingest.decode import REASONS, reasons
    meter = REGISTRY["meter"]
    assert meter.checks and "register_regressed" in meter.refusals
    assert reasons(REGISTRY)[:len(REASONS)] == REASONS and "register_regressed" in reasons(REGISTRY)
    assert "register_regressed" not in REASONS, "the core does not name a kind's reason"
    with pytest.raises(ValueError, match="declares no refusals"):
        replace(meter, refusals=frozenset())
