"""One suite every device kind must pass, and the check that the models match docs/CONTRACT.md."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import orjson
import pytest

import devices
from devices import REGISTRY
from devices.base import Accepted, DeviceKind, Severity, StatePayload

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = (ROOT / "docs" / "CONTRACT.md").read_text(encoding="utf-8")
KINDS = sorted(REGISTRY.values(), key=lambda k: k.name)
ALLOWED_TAGS = {"site", "device", "kind", "type", "code", "label", "building"}


def section(kind: str) -> str:
    """The contract's section for one kind, whitespace folded."""
    match = re.search(rf"^### {kind} \(.*?$(.*?)(?=^##)", CONTRACT, re.S | re.M)
    assert match, f"no section for {kind} in docs/CONTRACT.md"
    return " ".join(match.group(1).split())


def backticked(text: str) -> list[str]:
    return re.findall(r"`([a-z0-9_]+)`", text)


def without_parentheses(text: str) -> str:
    return re.sub(r"\([^()]*\)", "", text)


def literal_values(annotation: object) -> set[str]:
    """The strings of a Literal annotation, through Optional."""
    values: set[str] = set()
    for arg in typing.get_args(annotation) or ():
        if isinstance(arg, str):
            values.add(arg)
        else:
            values |= literal_values(arg)
    return values


def models(kind: DeviceKind) -> list[type]:
    return [kind.telemetry, *kind.events]


def test_every_module_is_registered() -> None:
    modules = {p.stem for p in Path(devices.__file__).parent.glob("*.py")} - {"__init__", "base"}
    assert modules == set(REGISTRY)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_enumerations_match_the_contract(kind: DeviceKind) -> None:
    text = section(kind.name)
    enumerations = re.findall(r"`([a-z0-9_]+)` \(((?:`[a-z0-9_]+`,?\s*)+)\)", text)
    assert enumerations, "the parser found no enumerations: has the contract's format changed?"
    for field, values in enumerations:
        expected = set(backticked(values))
        found = [literal_values(m.model_fields[field].annotation) for m in models(kind) if field in m.model_fields]
        assert expected in found, f"{kind.name}.{field}: contract says {sorted(expected)}, models have {found}"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_fault_codes_match_the_contract(kind: DeviceKind) -> None:
    bullet = re.search(r"- fault codes(.*?)(?= - |$)", section(kind.name))
    assert bullet, f"no fault codes for {kind.name}"
    text = bullet.group(1).split(":", 1)[1]
    codes = set(backticked(without_parentheses(text)))
    if codes:
        assert codes == set(kind.faults)
    else:  # charger: "OCPP 1.6 ChargePointErrorCode in snake case (`ground_failure`, ..., ...)": a sample
        sample = set(backticked(text))
        assert sample and "..." in text and sample <= set(kind.faults)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_event_types_match_the_contract(kind: DeviceKind) -> None:
    documented = set(re.findall(r"- event `([a-z_]+)`", section(kind.name)))
    assert documented | {"fault"} == set(kind.event_types)


def test_commands_match_the_contract() -> None:
    table = re.search(r"\| kind \| ops \|(.*?)\n\n", CONTRACT, re.S)
    assert table
    seen = set()
    for row in table.group(1).strip().splitlines()[1:]:
        kinds_cell, ops_cell = [c.strip() for c in row.strip("|").split("|")]
        ops = set(backticked(without_parentheses(ops_cell)))
        args = dict(re.findall(r"`([a-z_]+)` \(args: `([a-z_]+)`\)", ops_cell))
        for name in (k.strip() for k in kinds_cell.split(",")):
            seen.add(name)
            kind = REGISTRY[name]
            assert set(kind.commands) == ops, name
            for op, arg in args.items():
                assert arg in kind.commands[op].model_fields, f"{name}.{op} lacks argument {arg}"
    assert seen == set(REGISTRY)


def test_state_payload_matches_the_contract() -> None:
    assert {"online", "fw", "ip", "model"} <= set(StatePayload.model_fields)
    assert StatePayload.model_fields["online"].is_required()


def test_project_copy_of_the_contract_is_the_shared_one() -> None:
    shared = ROOT.parent / "shared" / "CONTRACT.md"
    if not shared.exists():
        pytest.skip("no shared/CONTRACT.md beside the repository")
    assert shared.read_text(encoding="utf-8") == CONTRACT


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_examples_validate_and_map_to_safe_points(kind: DeviceKind) -> None:
    assert kind.examples.get("event"), "every kind needs example events"
    covered = set()
    for channel, examples in kind.examples.items():
        for example in examples:
            payload = kind.validate(channel, orjson.dumps(example))
            msg = Accepted("s1", kind.name, "d1", channel, payload, 1_000, 1_000, 0, {"building": "3"})
            for point in kind.to_points(msg):
                assert set(point.tags) <= ALLOWED_TAGS, point.tags
                assert not set(kind.personal) & set(point.tags), "personal data must never be a tag"
                assert point.fields and point.time_ms == 1_000
            if channel == "event":
                covered.add(example["type"])
    assert covered == set(kind.event_types), "every event type needs an example"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_fault_has_a_severity_and_both_titles(kind: DeviceKind) -> None:
    assert kind.zh and kind.en
    for code, spec in kind.faults.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", code)
        assert isinstance(spec.severity, Severity) and spec.zh.strip() and spec.en.strip(), code
