"""The outbox's size bookkeeping: a running total that matches the file, across a reopen, against its cap."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from devices.base import Point
from hub.events import Events, PointsRejected
from hub.storage.base import points_from_json, points_json
from hub.storage.batch import PointBatch
from hub.storage.embedded import EmbeddedStorage
from hub.storage.outbox import NEAR_FULL_FILL, Outbox, RefusedNotKept, Writer
from tests.support.refused import collecting

pytestmark = pytest.mark.unit


def batch(n: int, start: int = 0) -> list[Point]:
    return [Point("elevator", {"site": "s", "device": f"e{i % 7}"}, {"floor": i, "door": "closed"},
                  1_700_000_000_000 + i) for i in range(start, start + n)]


def bytes_on_disk(path: Path) -> int:
    """What the file itself says the waiting batches weigh, read beside the outbox's own connection."""
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT coalesce(sum(length(body)), 0) FROM batches").fetchone()[0])


def test_size_is_a_running_total_of_the_waiting_batches_kept_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    outbox = Outbox(path, max_bytes=10**9)
    assert outbox.size_bytes == 0 and outbox.fill == 0.0
    for i, n in enumerate((10, 300, 1, 57)):
        outbox.put(batch(n, start=1000 * i))
    outbox.put([])  # nothing stored, nothing counted
    total = bytes_on_disk(path)
    assert total > 0 and outbox.size_bytes == total and outbox.depth == 368
    outbox.close()

    outbox = Outbox(path, max_bytes=10**9)
    assert outbox.size_bytes == total and outbox.depth == 368
    [taken] = outbox.take(max_points=310)  # the first two batches
    assert len(taken.ids) == 2 and taken.points == 310 and len(taken.bodies) == 2
    outbox.ack(taken.ids, taken.points)
    assert outbox.size_bytes == bytes_on_disk(path) < total
    [rest] = outbox.take()
    outbox.ack(rest.ids, rest.points)
    assert outbox.size_bytes == 0 == bytes_on_disk(path) and outbox.depth == 0
    outbox.close()


def test_take_splits_the_oldest_batches_into_parts_without_splitting_a_batch(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    for n in (40, 30, 50, 20, 10):
        outbox.put(batch(n))
    assert [t.points for t in outbox.take(max_points=60, parts=2)] == [40, 30]  # 40+30 > 60: a part each
    assert [t.points for t in outbox.take(max_points=10, parts=9)] == [40, 30, 50, 20, 10]  # one batch a part
    assert [t.points for t in outbox.take(max_points=70, parts=3)] == [70, 70, 10]  # 40+30, 50+20, 10
    assert [t.points for t in outbox.take(max_points=1000, parts=2)] == [150]
    outbox.close()


def test_fill_near_full_and_full_follow_the_cap_and_put_still_accepts_past_it(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    probe = Outbox(tmp_path / "probe.db")
    probe.put(batch(50))
    one = probe.size_bytes  # what one such batch weighs
    probe.close()

    outbox = Outbox(path, max_bytes=10 * one)
    for i in range(7):
        outbox.put(batch(50))
        assert outbox.fill == (i + 1) / 10 and not outbox.near_full and not outbox.full
    outbox.put(batch(50))
    assert outbox.fill == NEAR_FULL_FILL and outbox.near_full and not outbox.full
    outbox.put(batch(50))
    outbox.put(batch(50))
    assert outbox.fill == 1.0 and outbox.full
    outbox.put(batch(50))  # the caller decides on back-pressure; the outbox never drops
    assert outbox.depth == 550 and outbox.fill > 1.0 and outbox.full
    outbox.close()

    outbox = Outbox(path, max_bytes=20 * one)  # a larger cap at the next start
    assert outbox.fill == 11 / 20 and not outbox.near_full
    [taken] = outbox.take(max_points=50 * 5)
    outbox.ack(taken.ids, taken.points)
    assert outbox.fill == 6 / 20 and outbox.size_bytes == bytes_on_disk(path)
    outbox.close()


class Tagged:
    """A wire format of its own, to tell batches apart by the store they were made for."""

    def __init__(self, name: str) -> None:
        self.wire_format = name

    def encode(self, points: Sequence[Point]) -> bytes:
        return f"{self.wire_format}:{len(points)}".encode()

    def batch(self) -> PointBatch:
        return PointBatch(self.encode)


def test_batches_are_kept_in_the_stores_format_and_an_older_files_points_are_encoded_for_it(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with sqlite3.connect(path) as db:  # a file from before batches had a format: points JSON only
        db.execute("CREATE TABLE batches (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, body BLOB NOT NULL)")
        db.execute("INSERT INTO batches (n, body) VALUES (?, ?)", (3, points_json(batch(3))))
    outbox = Outbox(path, wire=Tagged("lp"))
    assert outbox.depth == 3
    outbox.put(batch(2))
    [taken] = outbox.take()
    assert taken.bodies == [b"lp:3", b"lp:2"] and taken.points == 5 and not taken.foreign
    outbox.close()


def test_a_batch_made_for_another_store_comes_back_alone_as_foreign(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    outbox = Outbox(path, wire=Tagged("lp"))
    outbox.put(batch(4))
    outbox.close()
    outbox = Outbox(path)  # the same file, now for a store that reads points JSON
    outbox.put(batch(1))
    first, second = outbox.take(parts=3)
    assert first.foreign == [b"lp:4"] and first.bodies == [] and first.points == 4
    assert not second.foreign and [len(points_from_json(b)) for b in second.bodies] == [1]
    outbox.close()


async def test_a_refused_batch_nobody_kept_stays_in_the_outbox(tmp_path: Path) -> None:
    """The writer acknowledges refused points only once a `PointsRejected` handler kept them."""
    path = tmp_path / "outbox.db"
    made_for_influx = Outbox(path, wire=Tagged("line-protocol"))
    made_for_influx.put(batch(4))
    made_for_influx.close()
    outbox = Outbox(path)
    events = Events()

    def broken(event: PointsRejected) -> None:
        raise OSError("dead-letter disk full")

    events.on(PointsRejected, "dead-letters", broken)
    writer = Writer(outbox, EmbeddedStorage(tmp_path / "store.db"), events.emit)
    try:
        with pytest.raises(RefusedNotKept, match="refused were not kept"):
            await writer.write_once()
        assert outbox.depth == 4 and events.errors == {("PointsRejected", "dead-letters"): 1}
    finally:
        outbox.close()


async def test_the_writer_keeps_a_foreign_batch_as_a_dead_letter_and_stores_the_rest(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path / "store.db")
    await store.start()
    path = tmp_path / "outbox.db"
    made_for_influx = Outbox(path, wire=Tagged("line-protocol"))
    made_for_influx.put(batch(4))
    made_for_influx.close()
    outbox = Outbox(path, wire=store)
    now = int(time.time() * 1000)
    outbox.put([point._replace(time_ms=now - i) for i, point in enumerate(batch(3))])  # inside the retention
    refused: list[tuple[list[bytes], str]] = []
    writer = Writer(outbox, store, collecting(refused))
    try:
        assert await writer.write_once()  # both parts at once: the foreign one refused, the other stored
        assert refused == [([b"line-protocol:4"], "an outbox batch for another store, not points-json")]
        assert outbox.depth == 0 and writer.stats.rejected_points == 4 and writer.stats.points == 3
        assert len(await store.query_points(["elevator"], {}, limit=10)) == 3
    finally:
        outbox.close()
        await store.close()
