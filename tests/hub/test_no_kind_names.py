"""The hub never names a device kind: everything a kind knows is declared in its module under devices/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from devices import access, camera, charger, elevator, gate

pytestmark = pytest.mark.unit

HUB = Path(__file__).resolve().parents[2] / "hub"
KIND_NAMES = frozenset(k.KIND.name for k in (access, camera, charger, elevator, gate))
"""The contract's kinds, listed from their modules (not from the registry, which a test may extend)."""
WORD = re.compile(r"[A-Za-z]+")
PROSE = re.compile(r"\s")
"""Text with a space is for people (a field's description: "access records"), never a key the code matches."""


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (a module's, class's or function's first statement,
    and the attribute docstrings this project writes after an assignment)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for i, stmt in enumerate(body):
            first = i == 0 and isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            after_assignment = i > 0 and isinstance(body[i - 1], ast.Assign | ast.AnnAssign)
            if (first or after_assignment) and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                out.add(id(stmt.value))
    return out


def kind_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of each string constant, docstrings and prose excluded, that names a kind (also as
    `gate_event`, or inside an f-string's text)."""
    tree = ast.parse(source)
    skip = docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if not PROSE.search(node.value) and set(WORD.findall(node.value)) & KIND_NAMES:
                found.append((node.lineno, node.value))
    return found


def test_the_check_finds_a_kind_name() -> None:
    found = kind_literals('"""The gate."""\nx = "gate_event"\ny = f"{a}.elevator"\n')
    assert found == [(2, "gate_event"), (3, ".elevator")]
    assert kind_literals('def f() -> None:\n    """about the charger"""\n    return "charger"\n') == [(3, "charger")]
    assert kind_literals('log.info("the gate let it through")\n') == []


def test_no_file_under_hub_names_a_kind() -> None:
    named = {str(path.relative_to(HUB.parent)): found for path in sorted(HUB.rglob("*.py"))
             if (found := kind_literals(path.read_text(encoding="utf-8")))}
    assert named == {}
