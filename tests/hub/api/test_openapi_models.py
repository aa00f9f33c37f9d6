"""Every JSON success answer in the OpenAPI document has a model: a named schema with properties, not `{}` or
a bare `dict` (which is what a route without a response model gets)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from devices import REGISTRY
from hub import control
from hub.api import create_app
from hub.config import Settings

pytestmark = pytest.mark.unit

# the kinds' controllers too: their routes (orderly charging's) are the hub's API as much as the core's
STUB = SimpleNamespace(settings=Settings(admin_token="x"), controllers=control.make(REGISTRY))
DOC = create_app(STUB).openapi()  # type: ignore[arg-type]
COMPONENTS = DOC["components"]["schemas"]
SUCCESSES = [(f"{method.upper()} {path} {code}", response)
             for path, ops in DOC["paths"].items() for method, op in ops.items()
             for code, response in op["responses"].items() if code.startswith("2")]


def model_of(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The named model a response schema is, or is a list of; None for anything anonymous."""
    if schema.get("type") == "array":
        schema = schema.get("items", {})
    ref = schema.get("$ref", "")
    return COMPONENTS.get(ref.removeprefix("#/components/schemas/")) if ref else None


@pytest.mark.parametrize(("label", "response"), SUCCESSES, ids=[label for label, _ in SUCCESSES])
def test_each_json_success_has_a_model_with_fields(label: str, response: dict[str, Any]) -> None:
    content = response.get("content", {})
    if "application/json" not in content:
        assert content or label.startswith("GET /metrics"), f"{label}: no content and not a known non-JSON route"
        return
    model = model_of(content["application/json"].get("schema", {}))
    assert model is not None, f"{label}: no response model (schema {content['application/json'].get('schema')})"
    assert model.get("properties"), f"{label}: the model {model.get('title')} has no fields"


def test_the_walk_sees_every_route() -> None:
    assert len(SUCCESSES) == sum(len(ops) for ops in DOC["paths"].values())
    # the controllers' routes are in the document the walk covers
    assert {"/api/charging/{site}", "/api/charging/{site}/{charger}/plan"} <= set(DOC["paths"])


def test_a_route_without_a_model_would_fail() -> None:
    """The check can fail: what FastAPI documents for `-> dict[str, Any]` is no model."""
    assert model_of({"type": "object", "additionalProperties": True}) is None
    assert model_of({}) is None
    assert model_of({"type": "array", "items": {"type": "object"}}) is None
