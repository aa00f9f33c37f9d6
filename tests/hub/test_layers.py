"""Which parts of the hub may import which: the storage layer and the event types stay below ingest and alerts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

HUB = Path(__file__).resolve().parents[2] / "hub"


def runtime_imports(path: Path) -> set[str]:
    """Modules a file imports when it runs (not those under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                   for child in block.body for node in ast.walk(child)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted((HUB / "storage").glob("*.py")), ids=lambda p: p.name)
def test_the_storage_layer_imports_nothing_above_it(path: Path) -> None:
    above = ("hub.ingest", "hub.alerts", "hub.api", "hub.app", "hub.deadletter", "hub.bus")
    assert {m for m in runtime_imports(path) if m.startswith(above)} == set()


def test_the_event_types_import_only_the_log_gate_at_run_time() -> None:
    assert {m for m in runtime_imports(HUB / "events.py") if m.startswith(("hub", "devices"))} == {"hub.ratelog"}
