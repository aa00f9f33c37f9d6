"""Schemathesis against the OpenAPI document, as every role and as nobody: no answer is a 5xx, every
status code an answer carries is one the document declares, and every answer's body and content type
conform to what the document says of that status (its response model). The hub holds every kind's example
events and their alerts, so the reads answer with rows of every shape.

Bounded: a few examples per route, mode and role, so the whole walk stays well under a minute. The hub is
real (broker, embedded store) and served by uvicorn, as `smarthub run` serves it; schemathesis runs in a
thread with its own requests session so the hub keeps its event loop.
"""

from __future__ import annotations

import asyncio

import hypothesis
import pytest
from hypothesis.errors import Unsatisfiable

from hub.users import ROLES
from tests.support.hub_fixtures import HubRun, eventually, seed_examples
from tests.support.processes import free_port

schemathesis = pytest.importorskip("schemathesis")  # a dev dependency ([test] extra)

pytestmark = [pytest.mark.integration, pytest.mark.services]

EXAMPLES = 6


def walk(base_url: str, tokens: dict[str, str | None]) -> list[str]:
    """Every operation, both generation modes, each role; returns what failed."""
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for role, token in tokens.items():
                try:
                    examples(operation.as_strategy(generation_mode=mode), base_url, token)
                except Unsatisfiable:  # negative mode of a route without parameters or body
                    continue
                except Exception as exc:  # noqa: BLE001 - collected, reported together
                    failures.append(f"{operation.label} {mode.value} as {role}: {str(exc)[:600]}")
    return failures


def examples(strategy: object, base_url: str, token: str | None) -> None:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    headers = {"Authorization": f"Bearer {token}"} if token else {}

    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(case=strategy)
    def check(case: object) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=10)  # type: ignore[attr-defined]
        checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
        case.validate_response(response, checks=checks, headers=headers)  # type: ignore[attr-defined]

    check()


async def test_no_route_answers_a_5xx_or_an_undocumented_status(embedded_hub: HubRun) -> None:
    run = embedded_hub
    run.hub.commands.timeout_s = 0.05  # nobody answers commands here: 504 at once
    await seed_examples(run)
    tokens: dict[str, str | None] = {"nobody": None, **{r: run.hub.users.add(f"st-{r}", r) for r in ROLES}}  # type: ignore[arg-type]
    port = free_port()
    server = run.hub.http_server("127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, what="the HTTP server")
    try:
        failures = await asyncio.to_thread(walk, f"http://127.0.0.1:{port}", tokens)
    finally:
        server.should_exit = True
        await serving
    assert not failures, "\n\n".join(failures)
