"""The one storage suite: every test taking `storage` runs against InfluxDB 1.6 and the embedded store alike.

A few tests follow, per backend, what only that backend has: InfluxDB's HTTP
error mapping, outage and provisioning; the embedded store's retention and
keeping points and field types across a restart.
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import httpx
import pytest

from devices import REGISTRY
from devices.base import Point
from hub.storage.base import AggregateQuery, EventQuery, Storage, StorageRejected, StorageUnavailable
from hub.storage.embedded import SHARD_MS, EmbeddedStorage
from hub.storage.influx import InfluxStorage
from hub.storage.lineproto import encode
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.services]

NOW = int(time.time() * 1000)


def event(kind: str, device: str, t: int, site: str = "sunshine", type_: str = "fault", **fields: object) -> Point:
    tags = {"site": site, "device": device, "type": type_}
    if type_ == "fault":
        tags["code"] = "door_forced"
    return Point(f"{kind}_event", tags, {"id": f"{device}-{t}", "lag_ms": 0, **fields}, t)  # type: ignore[dict-item]


def ids(rows: list[dict[str, object]]) -> list[object]:
    return [r["id"] for r in rows]


async def test_every_field_type_round_trips(storage: Storage) -> None:
    fields: dict[str, bool | int | float | str] = {
        "floor": -2, "trips": 2**62, "speed_mps": 1.75, "load_kg": 2.0, "running": True, "occupied": False,
        "mode": "normal", "plate": '琼A"12,3 4=5\\x\ny', "detail": "电梯困人 \\", "empty": ""}
    tags = {"site": "阳光 小区", "device": "e,1=x y", "building": "3号楼"}
    await storage.write([Point("elevator", tags, fields, NOW)])
    [(measurement, t, columns)] = await storage.query_points(["elevator"], {"device": "e,1=x y"})
    assert (measurement, t) == ("elevator", NOW)
    assert columns == {**tags, **fields}
    # InfluxDB's JSON writes the float 2.0 as 2, so a whole float may come back as int; the rest keep their type.
    assert {k: type(columns[k]) for k in ("floor", "trips", "speed_mps", "running", "occupied", "mode")} == {
        "floor": int, "trips": int, "speed_mps": float, "running": bool, "occupied": bool, "mode": str}


async def test_special_characters_in_names_and_filters(storage: Storage) -> None:
    """Escaping on write (line protocol) and on read (InfluxQL literals) both hold, Chinese included."""
    odd = "a,b=c d'e\"f#g 小区"
    value = odd + "\\ and a\nnewline"  # a string value may hold anything
    await storage.write([Point("camera_event", {"site": "s", "device": odd, "type": "detection", "zone": odd},
                               {"id": "x1", "field with, = and \"quote\"": value}, NOW)])
    [row] = await storage.query_events(EventQuery(device=odd))
    assert row == {"time": NOW, "kind": "camera", "site": "s", "device": odd, "type": "detection", "zone": odd,
                   "id": "x1", "field with, = and \"quote\"": value}
    assert len(await storage.query_points(["camera_event"], {"zone": odd})) == 1
    assert await storage.query_points(["camera_event"], {"zone": "a,b"}) == []


async def test_filter_on_a_registry_tag(storage: Storage) -> None:
    await storage.write([
        Point("elevator", {"site": "s", "device": "e1", "building": "3号楼"}, {"floor": 1}, NOW),
        Point("elevator", {"site": "s", "device": "e2", "building": "4号楼"}, {"floor": 2}, NOW),
        Point("elevator", {"site": "s", "device": "e3"}, {"floor": 3}, NOW),
    ])
    rows = await storage.query_points(["elevator"], {"building": "4号楼"})
    assert [r[2]["device"] for r in rows] == ["e2"]
    rows = await storage.query_points(["elevator"], {"building": ""})  # InfluxDB: a missing tag equals ''
    assert [r[2]["device"] for r in rows] == ["e3"]


async def test_events_filtered_and_newest_first(storage: Storage) -> None:
    await storage.write([
        event("access", "d1", NOW - 4000),
        event("access", "d2", NOW - 3000),
        event("gate", "g1", NOW - 2000, type_="barrier", state="stuck"),
        event("access", "d1", NOW - 1000, site="moonlight"),
        event("charger", "c1", NOW + 60_000),  # a device clock ahead of ours: still found
    ])
    assert ids(await storage.query_events(EventQuery())) == [
        f"c1-{NOW + 60_000}", f"d1-{NOW - 1000}", f"g1-{NOW - 2000}", f"d2-{NOW - 3000}", f"d1-{NOW - 4000}"]
    assert ids(await storage.query_events(EventQuery(kind="access", site="sunshine"))) == [
        f"d2-{NOW - 3000}", f"d1-{NOW - 4000}"]
    assert ids(await storage.query_events(EventQuery(site="moonlight"))) == [f"d1-{NOW - 1000}"]
    assert ids(await storage.query_events(EventQuery(device="d1"))) == [f"d1-{NOW - 1000}", f"d1-{NOW - 4000}"]
    assert ids(await storage.query_events(EventQuery(type="barrier"))) == [f"g1-{NOW - 2000}"]
    assert ids(await storage.query_events(EventQuery(since_ms=NOW - 3000, until_ms=NOW - 2000))) == [
        f"g1-{NOW - 2000}", f"d2-{NOW - 3000}"]  # both bounds inclusive
    assert ids(await storage.query_events(EventQuery(since_ms=NOW - 1500))) == [
        f"c1-{NOW + 60_000}", f"d1-{NOW - 1000}"]
    assert ids(await storage.query_events(EventQuery(until_ms=NOW - 3500))) == [f"d1-{NOW - 4000}"]
    assert ids(await storage.query_events(EventQuery(limit=2))) == [f"c1-{NOW + 60_000}", f"d1-{NOW - 1000}"]
    assert ids(await storage.query_events(EventQuery(kind="access", limit=1))) == [f"d1-{NOW - 1000}"]
    assert await storage.query_events(EventQuery(limit=0)) == []
    [gate] = await storage.query_events(EventQuery(kind="gate"))
    assert gate == {"time": NOW - 2000, "kind": "gate", "site": "sunshine", "device": "g1", "type": "barrier",
                    "id": f"g1-{NOW - 2000}", "lag_ms": 0, "state": "stuck"}


async def test_an_event_is_found_by_its_device_type_and_exact_time(storage: Storage) -> None:
    """What `GET /api/incidents/{id}/events` asks for each event an incident merged."""
    await storage.write([
        event("camera", "cam-1", NOW - 1, type_="detection", label="person"),
        event("camera", "cam-1", NOW, type_="detection", label="person"),
        event("camera", "cam-1", NOW + 1, type_="detection", label="person"),
        event("camera", "cam-2", NOW, type_="detection", label="person"),
        event("camera", "cam-1", NOW, site="moonlight", type_="detection", label="person"),
    ])
    found = await storage.query_events(EventQuery("sunshine", "camera", "cam-1", "detection", NOW, NOW, 10))
    assert ids(found) == [f"cam-1-{NOW}"] and found[0]["label"] == "person"


async def test_every_kind_has_its_events_found(storage: Storage) -> None:
    await storage.write([event(kind, f"{kind}-1", NOW - i) for i, kind in enumerate(sorted(REGISTRY))])
    rows = await storage.query_events(EventQuery())
    assert [r["kind"] for r in rows] == sorted(REGISTRY)


async def test_equal_times_come_back_in_one_order_on_both_backends(storage: Storage) -> None:
    """By measurement, then series key descending (InfluxDB's order, which the embedded store copies)."""
    await storage.write([event("gate", "g1", NOW), event("access", "d1", NOW), event("gate", "g3", NOW),
                         event("access", "d2", NOW), event("gate", "g2", NOW - 1)])
    assert ids(await storage.query_events(EventQuery())) == [
        f"d2-{NOW}", f"d1-{NOW}", f"g3-{NOW}", f"g1-{NOW}", f"g2-{NOW - 1}"]
    assert ids(await storage.query_events(EventQuery(limit=3))) == [f"d2-{NOW}", f"d1-{NOW}", f"g3-{NOW}"]


async def test_nothing_stored_yet_is_an_empty_answer(storage: Storage) -> None:
    assert await storage.query_events(EventQuery()) == []
    assert await storage.query_points(["charger"], {"site": "x"}) == []


async def test_the_same_point_twice_is_stored_once_with_fields_merged(storage: Storage) -> None:
    tags = {"site": "s", "device": "c1"}
    await storage.write([Point("charger", tags, {"power_kw": 7.0, "connector": 1}, NOW)])
    await storage.write([Point("charger", tags, {"power_kw": 6.5, "status": "charging"}, NOW)])
    rows = await storage.query_points(["charger"], {"device": "c1"})
    assert [r[2] for r in rows] == [{**tags, "power_kw": 6.5, "connector": 1, "status": "charging"}]


async def test_a_redelivered_event_is_stored_once(storage: Storage) -> None:
    await storage.write([event("access", "d1", NOW), event("access", "d1", NOW)])
    await storage.write([event("access", "d1", NOW)])
    assert ids(await storage.query_events(EventQuery())) == [f"d1-{NOW}"]


async def test_an_empty_tag_is_no_tag(storage: Storage) -> None:
    """InfluxDB drops empty tag values; the same series with or without them is one series."""
    await storage.write([Point("elevator", {"site": "s", "device": "e1", "building": ""}, {"floor": 1}, NOW)])
    await storage.write([Point("elevator", {"site": "s", "device": "e1"}, {"trips": 9}, NOW)])
    assert [r[2] for r in await storage.query_points(["elevator"], {})] == [
        {"site": "s", "device": "e1", "floor": 1, "trips": 9}]


@pytest.mark.parametrize("name", ["a\\", "a\\,b", "a\nb"])
async def test_a_batch_with_a_name_no_store_can_keep_exactly_is_refused_whole(storage: Storage, name: str) -> None:
    """InfluxDB 1.x reads a backslash before `,` `=` or a space as an escape and has no escape for a newline."""
    good = Point("elevator", {"site": "s", "device": "e1"}, {"floor": 1}, NOW)
    for bad in (Point("elevator", {"site": "s", "device": name}, {"floor": 2}, NOW + 1),
                Point("elevator", {"site": "s", "device": "e2"}, {name: 2}, NOW + 1)):
        with pytest.raises(StorageRejected, match="cannot store"):
            await storage.write([good, bad])
    assert await storage.query_points(["elevator"], {}) == []


async def test_points_without_storable_fields_are_not_stored(storage: Storage) -> None:
    await storage.write([Point("elevator", {"device": "e1"}, {"speed_mps": float("nan"), "x": None}, NOW),  # type: ignore[dict-item]
                         Point("elevator", {"device": "e2"}, {"speed_mps": float("inf"), "floor": 1}, NOW)])
    assert [r[2] for r in await storage.query_points(["elevator"], {})] == [{"device": "e2", "floor": 1}]


async def test_a_large_batch_is_stored_whole(storage: Storage) -> None:
    """5,000 points: InfluxDB gets it gzip-compressed and encoded off the event loop."""
    points = [event("camera", f"c{i % 50}", NOW - i, type_="detection", label="person", score=0.5) for i in range(5000)]
    await storage.write(points)
    rows = await storage.query_events(EventQuery(kind="camera", limit=10_000))
    assert len(rows) == 5000 and rows[0]["time"] == NOW and rows[-1]["time"] == NOW - 4999


async def test_injection_in_filters_is_just_a_value(storage: Storage) -> None:
    await storage.write([event("access", "d1", NOW)])
    for evil in ("d1' OR '1'='1", 'd1" OR 1=1 --', "d1\\", "d1'; DROP DATABASE x; --", "d1\n"):
        assert await storage.query_events(EventQuery(device=evil)) == []
    assert await storage.query_points(["access_event"], {'device" = \'d1\' OR "x': "y"}) == []
    assert ids(await storage.query_events(EventQuery(device="d1"))) == [f"d1-{NOW}"]


async def test_a_field_type_conflict_is_refused_and_the_rest_of_the_batch_kept(storage: Storage) -> None:
    """InfluxDB answers 400 "partial write: field type conflict"; the embedded store does the same."""
    await storage.write([Point("elevator", {"device": "e1"}, {"floor": 3}, NOW)])
    batch = [Point("elevator", {"device": "e1"}, {"floor": "third"}, NOW + 1),
             Point("elevator", {"device": "e2"}, {"floor": 4.5}, NOW + 2),  # float is not integer either
             Point("elevator", {"device": "e3"}, {"floor": 5}, NOW + 3)]
    with pytest.raises(StorageRejected, match=r"field type conflict.*dropped=2"):
        await storage.write(batch)
    assert [(r[1], r[2]["floor"]) for r in await storage.query_points(["elevator"], {})] == [(NOW + 3, 5), (NOW, 3)]


async def test_an_integer_beyond_64_bits_is_refused(storage: Storage) -> None:
    with pytest.raises(StorageRejected, match="value out of range"):  # InfluxDB 1.6 says "dropped=0" here
        await storage.write([Point("charger", {"device": "c1"}, {"energy_wh": 2**63}, NOW),
                             Point("charger", {"device": "c2"}, {"energy_wh": 2**63 - 1}, NOW)])
    assert [r[2]["energy_wh"] for r in await storage.query_points(["charger"], {})] == [2**63 - 1]


async def test_field_types_are_per_measurement_and_per_shard(storage: Storage) -> None:
    """Another measurement, or a point a few weeks back (another shard), may use another type.

    (A query spanning both shards differs: InfluxDB 1.x returns only the values of the type
    ranking first and skips rows left with no field; the embedded store returns them all.)
    """
    await storage.write([Point("elevator", {"device": "e1"}, {"floor": 3}, NOW)])
    await storage.write([Point("gate", {"device": "g1"}, {"floor": "x"}, NOW)])
    weeks_ago = NOW - 3 * SHARD_MS
    await storage.write([Point("elevator", {"device": "e1"}, {"floor": "basement", "trips": 1}, weeks_ago),
                         Point("elevator", {"device": "e2"}, {"floor": "roof"}, weeks_ago - 1)])
    assert [r[2] for r in await storage.query_points(["elevator"], {}, since_ms=NOW - SHARD_MS)] == [
        {"device": "e1", "floor": 3}]
    assert [r[2]["floor"] for r in await storage.query_points(["elevator"], {}, until_ms=NOW - SHARD_MS)] == [
        "basement", "roof"]
    assert [r[2]["floor"] for r in await storage.query_points(["gate"], {})] == ["x"]


async def test_ping(storage: Storage) -> None:
    assert await storage.ping() is True


async def test_query_statement_errors_raise(influxd: str) -> None:
    """InfluxDB 1.6 answers a failed statement with HTTP 200 and `results[0].error`."""
    store = InfluxStorage(influxd, db="statement_errors")
    await store.start()
    try:
        await store.write([Point("m", {}, {"s": "text"}, NOW)])
        assert (await store.query('SELECT "s" FROM "m"'))[0]["values"] == [[NOW, "text"]]
        with pytest.raises(StorageRejected, match="unsupported mean iterator type"):
            await store.query('SELECT mean("s") FROM "m"')
        with pytest.raises(StorageRejected, match="error parsing query"):
            await store.query("SELEC nonsense")
    finally:
        await store.close()


async def drop_database(url: str, db: str) -> None:
    """What an admin does: InfluxDB's own HTTP API, not the store's statement runner."""
    async with httpx.AsyncClient(base_url=url) as client:
        (await client.post("/query", params={"q": f'DROP DATABASE "{db}"'})).raise_for_status()


async def test_influx_provisions_on_first_write_and_again_after_the_database_is_dropped(influxd: str) -> None:
    """The hub may start during an outage (no start-up provisioning), or an admin may drop the database."""
    store = InfluxStorage(influxd, db="lazy_provisioning")
    try:
        await store.write([event("access", "d1", NOW)])  # start() was never called
        await drop_database(influxd, "lazy_provisioning")
        with pytest.raises(StorageUnavailable, match="404"):
            await store.write([event("access", "d2", NOW)])
        await store.write([event("access", "d3", NOW)])  # the outbox's retry: created anew
        assert ids(await store.query_events(EventQuery())) == [f"d3-{NOW}"]
    finally:
        await drop_database(influxd, "lazy_provisioning")
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
    assert await store.ping() is False  # even on a closed client


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, StorageUnavailable), (503, StorageUnavailable), (429, StorageUnavailable), (408, StorageUnavailable),
     (401, StorageUnavailable), (403, StorageUnavailable), (404, StorageUnavailable),
     (400, StorageRejected), (413, StorageRejected), (422, StorageRejected)],
)
async def test_influx_write_errors_map_to_retry_or_refuse(status: int, error: type[Exception]) -> None:
    """Retry what a later attempt or a config fix can cure (auth included); refuse what is wrong with the data."""
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path == "/ping":
            return httpx.Response(204, headers={"X-Influxdb-Version": "3.0.0"})
        return httpx.Response(status, json={"error": f"server says {status}"})

    store = InfluxStorage("http://influx.invalid", db="d", token="user:pw")
    transport = httpx.MockTransport(answer)
    store._http = httpx.AsyncClient(base_url=store.url, headers=store._http.headers, transport=transport)
    big = [event("access", f"d{i}", NOW - i) for i in range(100)]
    with pytest.raises(error, match=f"{status}.*server says {status}"):
        await store.write(big)
    write = requests[-1]
    assert (write.url.path, write.url.params["db"], write.url.params["precision"]) == ("/write", "d", "ms")
    assert write.headers["Content-Encoding"] == "gzip" and gzip.decompress(write.content) == encode(big)
    assert write.headers["Authorization"] == "Basic dXNlcjpwdw=="  # user:pw
    await store.close()


def test_a_token_without_colon_is_sent_as_a_token() -> None:
    assert InfluxStorage("http://x", token="abc")._http.headers["Authorization"] == "Token abc"
    assert "Authorization" not in InfluxStorage("http://x")._http.headers


async def test_embedded_retention_prunes_old_points(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "s.db", retention_days=1)
    await store.start()
    old = NOW - 2 * 86_400_000
    await store.write([Point("gate", {"device": "g"}, {"cycles": 1}, old),
                       Point("gate", {"device": "g"}, {"cycles": 2}, NOW)])
    assert [r[2]["cycles"] for r in await store.query_points(["gate"], {})] == [2]  # pruned as it was written
    await store.write([Point("gate", {"device": "g"}, {"cycles": 0}, old - 1)])  # writes prune once a minute
    assert [r[2]["cycles"] for r in await store.query_points(["gate"], {})] == [2, 0]
    assert await store.prune(NOW) == 1
    assert [r[2]["cycles"] for r in await store.query_points(["gate"], {})] == [2]
    assert await store.prune(NOW + 2 * 86_400_000) == 1
    await store.close()


async def test_embedded_store_keeps_points_and_field_types_across_a_restart(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "s.db")
    await store.start()
    await store.write([event("access", "d1", NOW)])
    await store.close()
    store = EmbeddedStorage(tmp_path / "s.db")
    await store.start()
    assert ids(await store.query_events(EventQuery())) == [f"d1-{NOW}"]
    with pytest.raises(StorageRejected, match="conflict"):
        await store.write([event("access", "d1", NOW + 1, lag_ms="slow")])
    await store.close()


async def test_events_of_one_type_are_forgotten_after_retention(storage: Storage) -> None:
    passage = {"plate": "琼A12345", "id": "p"}
    await storage.write([
        Point("gate_event", {"site": "s", "device": "g1", "type": "passage"}, passage, NOW - 100 * 86_400_000),
        Point("gate_event", {"site": "s", "device": "g1", "type": "passage"}, passage | {"id": "q"}, NOW),
        Point("gate_event", {"site": "s", "device": "g1", "type": "barrier"}, {"state": "open", "id": "b"},
              NOW - 100 * 86_400_000),
    ])
    await storage.delete_events("gate", "passage", NOW - 90 * 86_400_000)
    assert sorted(e["id"] for e in await storage.query_events(EventQuery(kind="gate"))) == ["b", "q"]


async def test_aggregates_per_time_bucket_agree_on_both_stores(storage: Storage) -> None:
    hour = 3_600_000
    start = (NOW // (24 * hour)) * 24 * hour - 8 * hour  # a China midnight (16:00 UTC the day before)
    passage = {"site": "s", "device": "g1", "type": "passage"}
    await storage.write([
        Point("gate_event", passage, {"id": "a", "confidence": 0.5}, start + 10),
        Point("gate_event", passage, {"id": "b", "confidence": 0.9}, start + 20),
        Point("gate_event", passage, {"id": "c", "confidence": 0.7}, start + 2 * hour + 5),
        Point("gate_event", {**passage, "device": "g2"}, {"id": "d", "confidence": 1.0}, start + 2 * hour + 6),
        Point("gate_event", {**passage, "type": "barrier"}, {"id": "e"}, start + 30),
        Point("charger", {"site": "s", "device": "ev1"}, {"power_kw": 7.0}, start + 100),
        Point("charger", {"site": "s", "device": "ev1"}, {"power_kw": 3.0}, start + 200),
    ])
    counts = await storage.aggregate("gate_event", "count", "id", {"type": "passage"}, start, start + 3 * hour, hour)
    assert counts == [(start, 2), (start + hour, 0), (start + 2 * hour, 2)]
    one_gate = await storage.aggregate("gate_event", "count", "id", {"type": "passage", "device": "g1"},
                                       start, start + 3 * hour, hour)
    assert [n for _, n in one_gate] == [2, 0, 1]
    mean = await storage.aggregate("gate_event", "mean", "confidence", {"type": "passage"}, start,
                                   start + 3 * hour, hour)
    assert mean[0][1] == pytest.approx(0.7) and mean[1][1] is None and mean[2][1] == pytest.approx(0.85)
    by_field = await storage.aggregate("gate_event", "count", "id", {"type": "passage", "id": "c"}, start,
                                       start + 3 * hour, hour)
    assert [n for _, n in by_field] == [0, 0, 1]  # `id` is a field: a filter on fields works too
    power = await storage.aggregate("charger", "max", "power_kw", {}, start, start + hour, hour)
    assert power == [(start, 7.0)]
    assert await storage.aggregate("charger", "min", "power_kw", {}, start, start + hour, hour) == [(start, 3.0)]
    day = 24 * hour
    days = await storage.aggregate("gate_event", "count", "id", {}, start - day, start + day, day, offset_ms=-8 * hour)
    assert days == [(start - day, 0), (start, 5)]  # days start at China midnight


async def test_aggregates_grouped_by_tags_agree_on_both_stores(storage: Storage) -> None:
    hour = 3_600_000
    start = (NOW // hour - 3) * hour
    await storage.write([
        Point("charger", {"site": "s", "device": "ev1"}, {"power_kw": 7.0}, start + 10),
        Point("charger", {"site": "s", "device": "ev1"}, {"power_kw": 3.0}, start + 20),
        Point("charger", {"site": "s", "device": "ev1"}, {"power_kw": 6.0}, start + 2 * hour),
        Point("charger", {"site": "s", "device": "ev2", "building": "3号楼"}, {"power_kw": 11.0}, start + 30),
        Point("charger", {"site": "t", "device": "ev1"}, {"power_kw": 2.0}, start + hour),
        Point("charger", {"site": "s", "device": "ev3"}, {"status": "available"}, start + 40),  # no power_kw
        Point("charger", {"site": "s", "device": "ev4"}, {"power_kw": 1.0}, start - 1),  # before the range
    ])
    mean = await storage.aggregate_by("charger", "mean", "power_kw", {}, start, start + 3 * hour, hour,
                                      ("site", "device"))
    assert mean == {("s", "ev1"): [(start, 5.0), (start + hour, None), (start + 2 * hour, 6.0)],
                    ("s", "ev2"): [(start, 11.0), (start + hour, None), (start + 2 * hour, None)],
                    ("t", "ev1"): [(start, None), (start + hour, 2.0), (start + 2 * hour, None)]}
    counts = await storage.aggregate_by("charger", "count", "power_kw", {"site": "s"}, start, start + 2 * hour,
                                        hour, ("device",))
    assert counts == {("ev1",): [(start, 2), (start + hour, 0)], ("ev2",): [(start, 1), (start + hour, 0)]}
    by_building = await storage.aggregate_by("charger", "sum", "power_kw", {"site": "s"}, start, start + hour, hour,
                                             ("building",))
    assert by_building == {("",): [(start, 10.0)], ("3号楼",): [(start, 11.0)]}  # a missing tag groups as ''
    assert await storage.aggregate("charger", "sum", "power_kw", {"building": "3号楼"}, start, start + hour,
                                   hour) == [(start, 11.0)]  # a registry tag: in the tags JSON of the embedded store
    assert await storage.aggregate("charger", "sum", "power_kw", {"building": ""}, start, start + hour,
                                   hour) == [(start, 10.0)]  # InfluxDB: a missing tag equals ''
    assert await storage.aggregate_by("charger", "max", "power_kw", {"site": "nowhere"}, start, start + hour,
                                      hour, ("device",)) == {}


async def test_several_aggregates_at_once_answer_as_each_alone(storage: Storage) -> None:
    hour = 3_600_000
    start = (NOW // (2 * hour) - 1) * 2 * hour  # on a 2-hour boundary: the 2-hour query below is one bucket
    passage = {"site": "s", "device": "g1", "type": "passage"}
    await storage.write([
        Point("gate_event", passage, {"id": "a", "direction": "in", "confidence": 0.5}, start + 10),
        Point("gate_event", passage, {"id": "b", "direction": "out", "confidence": 0.9}, start + 20),
        Point("gate_event", {**passage, "site": "t"}, {"id": "c", "direction": "in", "confidence": 0.7}, start + hour),
        Point("gate_event", {**passage, "type": "barrier"}, {"id": "d", "state": "open"}, start + 30),
        Point("access_event", {"site": "s", "device": "d1", "type": "access"}, {"id": "e", "result": "granted"},
              start + 40),
        Point("charger_event", {"site": "s", "device": "ev1", "type": "session_stop"}, {"id": "f", "energy_kwh": 7.5},
              start + 50),
    ])
    queries = [
        AggregateQuery("gate_event", "count", "id", {"type": "passage", "direction": "in"}, start, start + 2 * hour,
                       hour),
        AggregateQuery("gate_event", "count", "id", {"type": "passage", "direction": "out", "site": "s"}, start,
                       start + 2 * hour, hour),
        AggregateQuery("gate_event", "mean", "confidence", {"type": "passage"}, start, start + 2 * hour, hour),
        AggregateQuery("gate_event", "count", "id", {}, start, start + 2 * hour, 2 * hour),
        AggregateQuery("gate_event", "count", "id", {"type": "barrier"}, start, start + hour, hour),
        AggregateQuery("access_event", "count", "id", {"result": "denied"}, start, start + hour, hour),
        AggregateQuery("charger_event", "sum", "energy_kwh", {"type": "session_stop"}, start, start + hour, hour),
        AggregateQuery("charger_event", "sum", "energy_kwh", {"type": "session_stop", "site": "t"}, start,
                       start + hour, hour),
    ]
    together = await storage.aggregate_many(queries)
    alone = [await storage.aggregate(q.measurement, q.fn, q.field, q.where, q.since_ms, q.until_ms, q.every_ms,
                                     q.offset_ms) for q in queries]
    assert together == alone
    assert [[v for _, v in answer] for answer in together] == [
        [1, 1], [1, 0], [pytest.approx(0.7), pytest.approx(0.7)], [4], [1], [0], [7.5], [None]]
    assert await storage.aggregate_many([]) == []


async def test_an_embedded_file_from_before_the_type_index_gets_it_and_answers_the_same(tmp_path: Path) -> None:
    import sqlite3

    from hub.storage.embedded import SCHEMA

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA.replace("CREATE INDEX IF NOT EXISTS points_type_time", "-- "))
    old.close()
    store = EmbeddedStorage(path, retention_days=36_500)
    await store.start()
    await store.write([event("gate", "g1", NOW, type_="passage"), event("gate", "g1", NOW + 1, type_="barrier")])
    plan = sqlite3.connect(path).execute(
        "EXPLAIN QUERY PLAN SELECT * FROM points WHERE measurement = 'gate_event' AND type = 'passage'"
        " AND time_ms >= 0").fetchall()
    assert "points_type_time" in str(plan)
    [(_, passages)] = await store.aggregate("gate_event", "count", "id", {"type": "passage"}, NOW, NOW + 2,
                                            86_400_000)
    assert passages == 1
    await store.close()


async def test_a_registers_increase_per_bucket_agrees_on_both_stores(storage: Storage) -> None:
    """Consumption: each step between a meter's readings counts in the later reading's bucket (edges too), the
    reading before the range is looked back for, a replaced meter's restart counts nothing, never less."""
    hour, minute = 3_600_000, 60_000
    start = (NOW // (24 * hour)) * 24 * hour - 8 * hour - 24 * hour  # yesterday's China midnight

    def reading(device: str, t: int, value: float, utility: str = "water", building: str = "A",
                site: str = "s") -> Point:
        return Point("meter", {"site": site, "device": device, "building": building},
                     {"utility": utility, "reading": value, "lag_ms": 0}, t)

    await storage.write([
        reading("w1", start - 10 * minute, 100.0),  # before the range: the first bucket's step starts here
        reading("w1", start, 100.5),  # on the edge: in the bucket it starts
        reading("w1", start + 30 * minute, 101.0),
        reading("w1", start + hour - 1, 101.25),
        reading("w1", start + hour + 10 * minute, 102.0),
        reading("w1", start + 2 * hour + 5 * minute, 0.5),  # replaced: the new register restarts
        reading("w1", start + 2 * hour + 30 * minute, 1.0),
        reading("w2", start + 20 * minute, 50.0, building="B"),  # its first reading ever: no step yet
        reading("w2", start + hour + 20 * minute, 51.0, building="B"),
        reading("e1", start - 30 * minute, 1000.0, utility="electricity"),
        reading("e1", start + 10 * minute, 1002.0, utility="electricity"),
        reading("w9", start - 10 * minute, 7.0, site="t"),
        reading("w9", start + 10 * minute, 9.0, site="t"),
        Point("meter", {"site": "s", "device": "w2", "building": "B"}, {"flow_lph": 3.0}, start + 40 * minute),
    ])
    water = {"site": "s", "utility": "water"}
    until = start + 4 * hour
    assert await storage.increase("meter", "reading", water, start, until, hour) == [
        (start, 1.25), (start + hour, 1.75), (start + 2 * hour, 0.5), (start + 3 * hour, None)]
    assert await storage.increase("meter", "reading", {**water, "building": "A"}, start, until, hour) == [
        (start, 1.25), (start + hour, 0.75), (start + 2 * hour, 0.5), (start + 3 * hour, None)]
    assert await storage.increase("meter", "reading", {"site": "s", "utility": "electricity"}, start, until,
                                  hour) == [(start, 2.0), (start + hour, None), (start + 2 * hour, None),
                                            (start + 3 * hour, None)]
    assert [v for _, v in await storage.increase("meter", "reading", {"utility": "water"}, start, until,
                                                 hour)] == [3.25, 1.75, 0.5, None]  # every site
    no_lookback = await storage.increase("meter", "reading", water, start, until, hour, lookback_ms=0)
    assert no_lookback[0] == (start, 0.75)
    day = 24 * hour
    assert await storage.increase("meter", "reading", water, start, start + day, day, offset_ms=-8 * hour) == [
        (start, 3.5)]  # days start at China midnight
    assert await storage.increase("meter", "reading", {"site": "nowhere"}, start, until, hour) == [
        (t, None) for t in range(start, until, hour)]
