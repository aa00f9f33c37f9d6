"""The one storage suite: every test runs against InfluxDB and the embedded store alike."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devices.base import Point
from hub.storage.base import EventQuery, Storage, StorageRejected, StorageUnavailable
from hub.storage.embedded import EmbeddedStorage
from hub.storage.influx import InfluxStorage
from tests.support.processes import free_port

pytestmark = pytest.mark.services

NOW = int(time.time() * 1000)


def event(kind: str, device: str, t: int, site: str = "sunshine", type_: str = "fault", **fields: object) -> Point:
    tags = {"site": site, "device": device, "type": type_}
    if type_ == "fault":
        tags["code"] = "door_forced"
    return Point(f"{kind}_event", tags, {"id": f"{device}-{t}", "lag_ms": 0, **fields}, t)  # type: ignore[dict-item]


async def test_every_field_type_round_trips(storage: Storage) -> None:
    fields = {"floor": -2, "trips": 2**40, "speed_mps": 1.75, "whole": 2.0, "running": True, "occupied": False,
              "mode": "normal", "plate": '琼A"12,3 4=5\\', "empty": ""}
    tags = {"site": "阳光 小区", "device": "e,1=x", "building": "3号楼"}
    await storage.write([Point("elevator", tags, fields, NOW)])
    [(measurement, t, columns)] = await storage.query_points(["elevator"], {"device": "e,1=x"})
    assert (measurement, t) == ("elevator", NOW)
    assert columns == {**tags, **fields}
    assert type(columns["running"]) is bool and type(columns["floor"]) is int


async def test_query_by_any_tag_including_registry_tags(storage: Storage) -> None:
    await storage.write([
        Point("elevator", {"site": "s", "device": "e1", "building": "3"}, {"floor": 1}, NOW),
        Point("elevator", {"site": "s", "device": "e2", "building": "4"}, {"floor": 2}, NOW),
    ])
    rows = await storage.query_points(["elevator"], {"building": "4"})
    assert [r[2]["device"] for r in rows] == ["e2"]


async def test_events_filtered_and_newest_first(storage: Storage) -> None:
    await storage.write([
        event("access", "d1", NOW - 4000),
        event("access", "d2", NOW - 3000),
        event("gate", "g1", NOW - 2000, type_="barrier", state="stuck"),
        event("access", "d1", NOW - 1000, site="moonlight"),
    ])
    ids = lambda rows: [r["id"] for r in rows]  # noqa: E731
    assert ids(await storage.query_events(EventQuery())) == [
        f"d1-{NOW - 1000}", f"g1-{NOW - 2000}", f"d2-{NOW - 3000}", f"d1-{NOW - 4000}"]
    assert ids(await storage.query_events(EventQuery(kind="access", site="sunshine"))) == [
        f"d2-{NOW - 3000}", f"d1-{NOW - 4000}"]
    assert ids(await storage.query_events(EventQuery(device="d1"))) == [f"d1-{NOW - 1000}", f"d1-{NOW - 4000}"]
    assert ids(await storage.query_events(EventQuery(type="barrier"))) == [f"g1-{NOW - 2000}"]
    assert ids(await storage.query_events(EventQuery(since_ms=NOW - 3000, until_ms=NOW - 2000))) == [
        f"g1-{NOW - 2000}", f"d2-{NOW - 3000}"]
    assert ids(await storage.query_events(EventQuery(limit=1))) == [f"d1-{NOW - 1000}"]
    [gate] = await storage.query_events(EventQuery(kind="gate"))
    assert gate == {"time": NOW - 2000, "kind": "gate", "site": "sunshine", "device": "g1", "type": "barrier",
                    "id": f"g1-{NOW - 2000}", "lag_ms": 0, "state": "stuck"}


async def test_nothing_stored_yet_is_an_empty_answer(storage: Storage) -> None:
    assert await storage.query_events(EventQuery()) == []
    assert await storage.query_points(["charger"], {"site": "x"}) == []


async def test_the_same_point_twice_is_stored_once_with_fields_merged(storage: Storage) -> None:
    tags = {"site": "s", "device": "c1"}
    await storage.write([Point("charger", tags, {"power_kw": 7.0}, NOW)])
    await storage.write([Point("charger", tags, {"power_kw": 6.5, "status": "charging"}, NOW)])
    rows = await storage.query_points(["charger"], {"device": "c1"})
    assert [r[2] for r in rows] == [{**tags, "power_kw": 6.5, "status": "charging"}]


async def test_injection_in_filters_is_just_a_value(storage: Storage) -> None:
    await storage.write([event("access", "d1", NOW)])
    for evil in ("d1' OR '1'='1", 'd1" OR 1=1 --', "d1\\"):
        assert await storage.query_events(EventQuery(device=evil)) == []


async def test_ping(storage: Storage) -> None:
    assert await storage.ping() is True


async def test_influx_refuses_a_field_type_conflict(influxd: str) -> None:
    store = InfluxStorage(influxd, db="conflicts")
    await store.start()
    try:
        await store.write([Point("elevator", {"device": "e1"}, {"floor": 3}, NOW)])
        with pytest.raises(StorageRejected, match="conflict"):
            await store.write([Point("elevator", {"device": "e1"}, {"floor": "third"}, NOW + 1)])
    finally:
        await store.close()


async def test_embedded_store_keeps_whatever_type_comes(tmp_path: Path) -> None:
    """Schemaless: the embedded store has no field types to conflict, so nothing is refused."""
    store = EmbeddedStorage(tmp_path / "s.db")
    await store.start()
    await store.write([Point("elevator", {"device": "e1"}, {"floor": 3}, NOW)])
    await store.write([Point("elevator", {"device": "e1"}, {"floor": "third"}, NOW + 1)])
    rows = await store.query_points(["elevator"], {})
    assert [r[2]["floor"] for r in rows] == ["third", 3]
    await store.close()


async def test_unreachable_influx_is_unavailable_not_fatal() -> None:
    store = InfluxStorage(f"http://127.0.0.1:{free_port()}", timeout_s=1)
    await store.start()  # must not raise: the hub starts during a database outage
    assert await store.ping() is False
    with pytest.raises(StorageUnavailable):
        await store.write([Point("elevator", {"device": "e1"}, {"floor": 3}, NOW)])
    with pytest.raises(StorageUnavailable):
        await store.query_events(EventQuery())
    await store.close()


async def test_embedded_retention_prunes_old_points(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "s.db", retention_days=1)
    await store.start()
    old = NOW - 2 * 86_400_000
    await store.write([Point("gate", {"device": "g"}, {"cycles": 1}, old),
                       Point("gate", {"device": "g"}, {"cycles": 2}, NOW)])
    assert [r[2]["cycles"] for r in await store.query_points(["gate"], {})] == [2]  # pruned as it was written
    await store.write([Point("gate", {"device": "g"}, {"cycles": 0}, old - 1)])  # writes prune once a minute
    assert await store.prune(NOW) == 1
    assert [r[2]["cycles"] for r in await store.query_points(["gate"], {})] == [2]
    await store.close()
