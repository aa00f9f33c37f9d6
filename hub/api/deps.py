"""Dependencies of the routes: the parts of the hub they use, and who is calling with which role.

A route asks for what it uses (`DeskDep`, `KindsDep`, ...) rather than the whole `Hub`, so what it can
reach is in its signature; a route that reads many parts gets one small object made for it (`HealthView`,
`ScreenSources`). The whole hub stays private to this module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.requests import HTTPConnection
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry

from devices.base import DeviceKind
from hub.alerts.desk import OrderDesk
from hub.alerts.engine import AlertEngine
from hub.alerts.store import AlertStore, OrderStore
from hub.audit import AuditLog
from hub.bus import LiveBus
from hub.commands import Commands
from hub.deadletter import DeadLetters
from hub.health import HealthWatch
from hub.incidents.chain import ChainStore
from hub.incidents.export import Exporter
from hub.incidents.store import IncidentStore
from hub.incidents.work import IncidentWork
from hub.inside import InsideTracker
from hub.mqtt import MqttLink
from hub.registry import Registry
from hub.screencache import ScreenCache
from hub.settled import Settled
from hub.state import LiveState
from hub.storage.base import Storage
from hub.storage.outbox import Outbox
from hub.tally import TodayTally
from hub.users import POLICE, Role, User, Users

if TYPE_CHECKING:  # not at run time: hub.app starts the API (`Hub.http_server`), so no import circle
    from hub.app import Hub

bearer = HTTPBearer(auto_error=False, description="API token (`smarthub user add`, or SMARTHUB_ADMIN_TOKEN)")
ROLE_ATTR = "smarthub_role"
"""Set on each `require(role)` check, so the request guard finds a route's role before the body is read."""


def _hub(connection: HTTPConnection) -> Hub:
    """The whole hub, for the getters below only (a request or a WebSocket alike)."""
    return connection.app.state.hub  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Access:
    """Who may use a route: `least` and the staff roles above it, and the roles outside the line it names
    (`also`: police reads incidents, which no rank would give it)."""

    least: Role
    also: tuple[Role, ...] = ()

    def admits(self, user: User) -> bool:
        return user.can(self.least) or user.role in self.also

    def refused(self, user: User) -> HTTPException:
        also = "".join(f" or {r}" for r in self.also)
        return HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {self.least} role{also}; "
                                                        f"{user.name} is {user.role}")


def refusal(users: Users, token: str | None, role: Role | Access | None) -> HTTPException | User:
    """The caller of `token`, or why not: 401 without a valid token, 403 when `role` does not admit it
    (a staff role: it and those above it; None: any valid token).

    One function for the request guard (before the body is read) and the route dependencies (after)."""
    user = users.authenticate(token) if token else None
    if user is None:
        return HTTPException(status.HTTP_401_UNAUTHORIZED, "a valid Bearer token is required",
                             headers={"WWW-Authenticate": "Bearer"})
    access = Access(role) if isinstance(role, str) else role
    if access is not None and not access.admits(user):
        return access.refused(user)
    return user


def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> User:
    """401 without a valid Bearer token; what the token's role may do is `require`'s."""
    found = refusal(_hub(request).users, credentials.credentials if credentials else None, None)
    if isinstance(found, HTTPException):
        raise found
    return found


def require(role: Role, also: tuple[Role, ...] = ()) -> object:
    """A dependency that lets `role`, the staff roles above it and the `also` roles through (403 for others)."""
    access = Access(role, also)

    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if not access.admits(user):
            raise access.refused(user)
        return user

    setattr(check, ROLE_ATTR, access)
    return Depends(check)


def _part(name: str) -> object:
    """A dependency giving one part of the hub, to HTTP routes and WebSockets alike (FastAPI needs the
    connection annotated, hence no lambda)."""

    def get(connection: HTTPConnection) -> object:
        return getattr(_hub(connection), name)

    get.__name__ = f"get_{name}"
    return Depends(get)


AlertsDep = Annotated[AlertEngine, _part("alerts")]
AlertStoreDep = Annotated[AlertStore, _part("alert_store")]
AuditDep = Annotated[AuditLog, _part("audit")]
ChainDep = Annotated[ChainStore, _part("chain")]
ExporterDep = Annotated[Exporter, _part("exporter")]
BusDep = Annotated[LiveBus, _part("bus")]
CommandsDep = Annotated[Commands, _part("commands")]
DeadLettersDep = Annotated[DeadLetters, _part("dead_letters")]
DeskDep = Annotated[OrderDesk, _part("desk")]
IncidentStoreDep = Annotated[IncidentStore, _part("incident_store")]
IncidentWorkDep = Annotated[IncidentWork, _part("incident_work")]
KindsDep = Annotated[Mapping[str, DeviceKind], _part("kinds")]
LiveDep = Annotated[LiveState, _part("live")]
MetricsDep = Annotated[CollectorRegistry, _part("metrics")]
OrderStoreDep = Annotated[OrderStore, _part("order_store")]
RegistryDep = Annotated[Registry, _part("registry")]
StorageDep = Annotated[Storage, _part("storage")]
UsersDep = Annotated[Users, _part("users")]


@dataclass(frozen=True, slots=True)
class HealthView:
    """What `/api/health` answers from: the watcher's report and the figures beside it."""

    watch: HealthWatch
    mqtt: MqttLink
    storage: Storage
    outbox: Outbox
    started_at: float

    @classmethod
    def of(cls, hub: Hub) -> HealthView:
        return cls(hub.health, hub.mqtt, hub.storage, hub.outbox, hub.started_at)


@dataclass(frozen=True, slots=True)
class ScreenSources:
    """What the big screen's figures (`/api/overview`, `/api/series/*`) are computed from, and the cache
    that shares each answer for a moment."""

    cache: ScreenCache
    storage: Storage
    registry: Registry
    live: LiveState
    alert_store: AlertStore
    inside: InsideTracker
    settled: Settled
    kinds: Mapping[str, DeviceKind]
    tally: TodayTally | None
    """Today's figures of the last hour, counted as events are accepted (None: read from the store)"""
    slow: ScreenCache
    """Answers of the slow figures (today's use), kept for a minute"""

    @classmethod
    def of(cls, hub: Hub) -> ScreenSources:
        return cls(hub.screen_cache, hub.storage, hub.registry, hub.live, hub.alert_store, hub.inside, hub.settled,
                   hub.kinds, hub.tally, hub.slow_figures)


@dataclass(frozen=True, slots=True)
class DistrictSources:
    """What the district wall's figures (`/api/district`) are computed from: the overview's live sources, the
    work orders, and the kinds' controllers (a kind's gauge may ask its own, e.g. the charging allocator)."""

    cache: ScreenCache
    registry: Registry
    live: LiveState
    alert_store: AlertStore
    order_store: OrderStore
    kinds: Mapping[str, DeviceKind]
    controllers: Mapping[str, object]
    """The first controller of each kind that has one"""

    @classmethod
    def of(cls, hub: Hub) -> DistrictSources:
        controllers: dict[str, object] = {}
        for kind, controller in hub.controllers:
            controllers.setdefault(kind, controller)
        return cls(hub.screen_cache, hub.registry, hub.live, hub.alert_store, hub.order_store, hub.kinds,
                   controllers)


def _health_view(request: Request) -> HealthView:
    return HealthView.of(_hub(request))


def _screen_sources(request: Request) -> ScreenSources:
    return ScreenSources.of(_hub(request))


def _district_sources(request: Request) -> DistrictSources:
    return DistrictSources.of(_hub(request))


HealthDep = Annotated[HealthView, Depends(_health_view)]
DistrictDep = Annotated[DistrictSources, Depends(_district_sources)]
ScreenDep = Annotated[ScreenSources, Depends(_screen_sources)]

Viewer = Annotated[User, require("viewer")]
Maintenance = Annotated[User, require("maintenance")]
Operator = Annotated[User, require("operator")]
Admin = Annotated[User, require("admin")]
IncidentReader = Annotated[User, require("viewer", also=(POLICE,))]
"""Reads incidents: the staff, and police (警务), who may read nothing else."""
EvidenceExporter = Annotated[User, require("operator", also=(POLICE,))]
"""Exports an incident's evidence (audited): operators and admins, and police."""
