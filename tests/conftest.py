"""Shared fixtures: real services are in tests/support (one plugin module each).

Every test is marked either `unit` or `integration` (a module-level `pytestmark`), never both and never
neither, so `pytest -m unit` is the whole of what runs in seconds without a service. Collection fails
otherwise, and also for a `unit` test that asks for a fixture which starts a real service.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.support.mqtt_fixtures", "tests.support.influx_fixtures", "tests.support.hub_fixtures",
                  "tests.support.browser", "tests.support.pg_fixtures"]

KINDS_OF_TEST = ("unit", "integration")
SERVICE_FIXTURES = frozenset({
    "mosquitto", "influxd_server", "influxd", "storage", "hub_run", "embedded_hub", "playwright_available",
    "fault_broker", "fault_influxd", "hub_process", "load", "postgres_server", "postgres_url", "state_url",
})


def marking_problem(marks: set[str], fixtures: set[str]) -> str | None:
    """What is wrong with a test's unit/integration marking, or None: pure, so the rule reads in one place."""
    kinds = sorted(marks & set(KINDS_OF_TEST))
    if len(kinds) != 1:
        return f"marked {kinds or 'neither'}: needs exactly one of `unit` or `integration`"
    if kinds == ["unit"] and "services" in marks:
        return "marked `unit` and `services`: a test needing a service is `integration`"
    if kinds == ["unit"] and (used := sorted(fixtures & SERVICE_FIXTURES)):
        return f"marked `unit` but uses the service fixtures {used}: mark it `integration`"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuses the whole run, before anything is deselected, when a test's marking is wrong."""
    problems = []
    for item in items:
        marks = {mark.name for mark in item.iter_markers()}
        if problem := marking_problem(marks, set(getattr(item, "fixturenames", ()))):
            problems.append(f"  {item.nodeid}: {problem}")
    if problems:
        raise pytest.UsageError("tests without a proper unit/integration marker (set a module-level "
                                "`pytestmark = pytest.mark.unit` or `integration`):\n" + "\n".join(problems))
