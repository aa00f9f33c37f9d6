"""Every refusal a route can give is in the OpenAPI document, with a model: walked from the app's own routes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi.routing import APIRoute

from hub.api import create_app
from hub.api.guard import GuardedRoute, route_role
from hub.api.routes import ROUTERS
from hub.config import Settings

pytestmark = pytest.mark.unit

APP = create_app(SimpleNamespace(settings=Settings(admin_token="x")))  # type: ignore[arg-type]  # only the schema
DOC = APP.openapi()
ALL = [route for router in ROUTERS for route in router.routes]  # the routers create_app includes
ROUTES = [(r, m) for r in ALL if isinstance(r, APIRoute) and r.include_in_schema for m in sorted(r.methods)]


@pytest.mark.parametrize(("route", "method"), ROUTES, ids=[f"{m} {r.path}" for r, m in ROUTES])
def test_each_route_declares_the_refusals_it_can_give(route: APIRoute, method: str) -> None:
    operation = DOC["paths"][route.path][method.lower()]
    declared = set(operation["responses"])
    role = route_role(route)
    wanted = set()
    if role is not None:
        wanted |= {"401", "403"}  # a viewer's read refuses police (警务), who read incidents only
        assert operation.get("security"), "a route that needs a token says so (Bearer)"
    if operation.get("parameters") or operation.get("requestBody"):
        wanted.add("422")
    if operation.get("requestBody"):
        wanted |= {"413", "403"}
        assert role is not None, "every route with a body needs a token, checked before the body is read"
    assert wanted <= declared, f"undeclared: {sorted(wanted - declared)}"
    for code, response in operation["responses"].items():
        assert response.get("description"), code
        if code != "200" and code.startswith(("4", "5")):
            assert "application/json" in response.get("content", {}), f"{code} has no model"


@pytest.mark.parametrize(("route", "method"), ROUTES, ids=[f"{m} {r.path}" for r, m in ROUTES])
def test_each_route_checks_the_token_before_it_reads(route: APIRoute, method: str) -> None:
    assert isinstance(route, GuardedRoute)


def test_the_walk_covers_the_whole_document() -> None:
    assert {(r.path, m.lower()) for r, m in ROUTES} == {(p, m) for p, ops in DOC["paths"].items() for m in ops}


def test_path_and_filter_values_follow_the_contract_slugs() -> None:
    params = {(p["name"], p["in"]): p["schema"] for p in
              DOC["paths"]["/api/devices/{site}/{kind}/{device}/commands"]["post"]["parameters"]}
    assert params[("site", "path")]["pattern"] == "^[a-z0-9][a-z0-9_-]{0,63}$"
    assert params[("device", "path")]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
    events = {p["name"]: p["schema"] for p in DOC["paths"]["/api/events"]["get"]["parameters"]}
    assert "pattern" in str(events["since"]) and "pattern" in str(events["type"])
