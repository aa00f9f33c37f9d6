"""A kind added by this test alone (`devices.register`): the hub knows it from its declaration, with no
other file touched. It is listed, counted, raises and titles its alerts, opens its work orders, refuses
its admin command to an operator, and goes through both stores."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import orjson
import pytest
from pydantic import Field

import devices
from devices.base import (
    Accepted,
    CommandArgs,
    DeviceKind,
    DevicePayload,
    EventPayload,
    FaultSpec,
    KindSettings,
    Severity,
)
from devices.rules import Clear, Intent, Raise
from hub.storage.base import EventQuery, Storage
from tests.support.hub_fixtures import HubRun, eventually

pytestmark = [pytest.mark.integration, pytest.mark.services]

NAME = "pump"


class Telemetry(DevicePayload):
    running: bool | None = None
    pressure_bar: float | None = Field(None, ge=0)


class Started(EventPayload):
    type: Literal["started"]
    reason: str = Field(min_length=1, max_length=64)


class Stop(CommandArgs):
    """Stopping the water for a building: admins only."""


class Settings(KindSettings):
    pump_max_bar: float = Field(8.0, gt=0, description="Pressure that raises pressure_high")


def pressure(msg: Accepted, telemetry: Mapping[str, Any], memory: dict[str, Any], now_ms: int,
             t: Settings) -> Iterable[Intent]:
    bar = telemetry.get("pressure_bar") if msg.channel == "telemetry" else None
    if bar is None:
        return ()
    return (Raise("pressure_high", f"{bar} bar"),) if bar > t.pump_max_bar else (Clear("pressure_high"),)


KIND = DeviceKind(
    name=NAME, zh="水泵", en="Water pump", telemetry=Telemetry, events=(Started,),
    faults={"dry_run": FaultSpec(Severity.CRITICAL, "干转", "Running dry"),
            "seal_leak": FaultSpec(Severity.MINOR, "机封漏水", "Seal leak")},
    commands={"stop": Stop, "start": Stop}, command_roles={"stop": "admin"},
    rules=(pressure,), settings=Settings,
    derived={"pressure_high": FaultSpec(Severity.MAJOR, "压力过高", "Pressure too high")},
    team="plumbing", work_orders=frozenset({"dry_run"}),
    examples={"telemetry": ({"running": True, "pressure_bar": 3.5},),
              "event": ({"type": "started", "id": "s-1", "reason": "schedule"},)},
)


@pytest.fixture(autouse=True, scope="module")
def pump_kind() -> Iterator[DeviceKind]:
    devices.register(KIND)
    try:
        yield KIND
    finally:
        devices.unregister(NAME)


async def test_the_kind_is_listed_counted_alerted_and_commanded(embedded_hub: HubRun) -> None:
    run = embedded_hub
    catalog = (await run.api.get("/api/catalog")).json()["kinds"][NAME]
    assert (catalog["zh"], catalog["en"], catalog["commands"]) == ("水泵", "Water pump", ["start", "stop"])
    assert catalog["command_roles"] == {"start": "operator", "stop": "admin"}, "the declared role, operator unsaid"
    assert catalog["faults"]["dry_run"] == {"zh": "干转", "en": "Running dry", "severity": "critical"}
    assert catalog["faults"]["pressure_high"]["severity"] == "major"

    await run.publish_many([(run.topic(NAME, "p1", "state"), {"online": True}),
                            (run.topic(NAME, "p1", "telemetry"), {"running": True, "pressure_bar": 9.5}),
                            (run.topic(NAME, "p1", "event"), {"type": "fault", "code": "dry_run", "active": True,
                                                              "id": "f-1"})])
    alerts = await eventually(lambda: {a.code: a for a in run.hub.alert_store.find(10, kind=NAME)}
                              if len(run.hub.alert_store.find(10, kind=NAME)) == 2 else None, what="two pump alerts")
    assert set(alerts) == {"dry_run", "pressure_high"}
    shown = {a["code"]: a for a in (await run.api.get("/api/alerts", params={"kind": NAME})).json()}
    assert shown["dry_run"]["severity"] == "critical" and shown["pressure_high"]["title_en"] == "Pressure too high"
    orders = await eventually(lambda: run.hub.desk.store.for_alert(alerts["dry_run"].id), what="a work order")
    assert orders.team == "plumbing"
    assert run.hub.desk.store.for_alert(alerts["pressure_high"].id) is None  # not a code that orders by itself

    [listed] = (await run.api.get("/api/devices", params={"kind": NAME})).json()
    assert (listed["device"], listed["online"]) == ("p1", True)
    overview = (await run.api.get("/api/overview")).json()
    assert overview["devices"][NAME] == {"total": 1, "online": 1, "faulted": 1}

    operator = run.hub.users.add("op", "operator")
    path = f"/api/devices/{run.site}/{NAME}/p1/commands"
    refused = await run.api.post(path, json={"op": "stop", "args": {}},
                                 headers={"Authorization": f"Bearer {operator}"})
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]


async def test_the_kind_goes_through_the_store(storage: Storage) -> None:
    now = int(time.time() * 1000)
    points = []
    for i, (channel, example) in enumerate((c, e) for c, es in KIND.examples.items() for e in es):
        payload = KIND.validate(channel, orjson.dumps(example))
        points += KIND.to_points(Accepted("s", NAME, "p1", channel, payload, now - i, now - i, 0))
    await storage.write(points)
    [event] = await storage.query_events(EventQuery(kind=NAME))
    assert (event["kind"], event["type"], event["reason"]) == (NAME, "started", "schedule")
    [(_, _, telemetry)] = await storage.query_points([NAME], {}, now - 10_000, now + 1, 10)
    assert telemetry["pressure_bar"] == 3.5 and telemetry["running"] is True
