"""What the screens (big screen, phone page) need besides the data: who is looking, what the names
mean in both languages.

Titles of kinds and fault codes come from the device kinds (`devices/`), so a page never carries its
own copy of them that could drift.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from hub.alerts.models import HUB_FAULTS, HUB_KIND, OFFLINE
from hub.api.deps import KindsDep, RegistryDep, Viewer
from hub.api.guard import GuardedRoute
from hub.api.schemas import CatalogOut, MeOut, errors
from hub.users import TITLES

router = APIRouter(prefix="/api", tags=["screens"], route_class=GuardedRoute, responses=errors(401, 403))


@router.get("/me", response_model=MeOut)
async def me(user: Viewer) -> MeOut:
    """The caller's name and role: screens sign alert actions with it and hide what the role cannot do."""
    return MeOut(name=user.name, role=user.role)


# exclude_unset: a site's optional fields the registry leaves out stay out
@router.get("/catalog", response_model=CatalogOut, response_model_exclude_unset=True)
async def catalog(kinds: KindsDep, registry: RegistryDep, _user: Viewer) -> dict[str, Any]:
    """Kinds, their commands with the role each needs, their fault codes (with severity) and the sites,
    titled in Chinese and English; kind `hub` titles the hub's own alerts."""
    # every kind lists every rule-raised code, as it always has
    shared = {"offline": OFFLINE, **{code: f for kind in kinds.values() for code, f in kind.derived.items()}}
    listed = {
        name: {"zh": kind.zh, "en": kind.en, "commands": sorted(kind.commands),
               "command_roles": {op: kind.command_role(op) for op in sorted(kind.commands)},
               "faults": {code: {"zh": f.zh, "en": f.en, "severity": f.severity.value}
                          for code, f in {**shared, **kind.faults}.items()}}
        for name, kind in sorted(kinds.items())
    }
    # the hub's own alerts (hub.health): no commands
    listed[HUB_KIND] = {"zh": "平台", "en": "Hub", "commands": [], "command_roles": {},
                        "faults": {code: {"zh": f.zh, "en": f.en, "severity": f.severity.value}
                                   for code, f in HUB_FAULTS.items()}}
    sites = {slug: site.model_dump(exclude_none=True) for slug, site in sorted(registry.sites.items())}
    roles = {role: {"zh": zh, "en": en} for role, (zh, en) in TITLES.items()}
    return {"kinds": listed, "sites": sites, "roles": roles}

