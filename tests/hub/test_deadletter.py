"""The dead-letter store keeps within its row and byte caps, oldest first, and counts every row it drops."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from devices.base import Point
from hub.deadletter import ROW_BYTES, DeadLetters, Filter, refused_kind
from hub.events import PointsRejected
from hub.ingest.decode import Rejected
from hub.storage.base import points_json
from hub.storage.lineproto import encode

pytestmark = pytest.mark.unit


def letter(i: int, payload: bytes = b"x" * 100, kind: str = "gate", reason: str = "not_json") -> Rejected:
    return Rejected(f"c/s/{kind}/d{i:03d}/telemetry", reason, f"bad {i:03d}", payload, 1_000 + i, kind)  # one size


def kept(store: DeadLetters) -> list[int]:
    return [row["received"] - 1_000 for row in store.page(10_000)[0]][::-1]


def bytes_on_disk(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        rows, size = db.execute(f"SELECT count(*), coalesce(sum({ROW_BYTES}), 0) FROM rejected").fetchone()
    return rows, size


def test_past_the_byte_cap_the_oldest_rows_go_and_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    store = DeadLetters(path)
    store.add(letter(0))
    store.flush()
    one = store.size_bytes
    store.close()
    path.unlink()
    store = DeadLetters(path, max_bytes=10 * one)
    for i in range(25):
        store.add(letter(i))
        if i % 4 == 3:
            store.flush()  # several flushes, some dropping more than one row
    store.flush()
    assert kept(store) == list(range(15, 25)) and store.dropped == 15
    assert (store.rows, store.size_bytes) == bytes_on_disk(path) == (10, 10 * one)
    store.add(letter(25, payload=b"y" * (3 * one)))  # one big row costs several small ones
    store.flush()
    assert kept(store)[0] == 19 and store.dropped == 19 and store.size_bytes <= 10 * one
    assert (store.rows, store.size_bytes) == bytes_on_disk(path)
    store.close()


def test_past_the_row_cap_the_oldest_rows_go_and_are_counted(tmp_path: Path) -> None:
    store = DeadLetters(tmp_path / "d.db", max_rows=50)
    for i in range(120):
        store.add(letter(i))
    store.flush()
    assert kept(store) == list(range(70, 120)) and store.dropped == 70 and store.rows == 50
    store.add(letter(120))
    store.flush()
    assert kept(store)[0] == 71 and store.dropped == 71
    store.close()


def test_totals_are_recomputed_at_open_and_follow_forget_before(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    store = DeadLetters(path)
    for i in range(30):
        store.add(letter(i, payload="琼A12345 ".encode() * i, kind="gate" if i % 2 else "小区"))
    store.close()
    store = DeadLetters(path)
    assert store.rows == 30 and store.size_bytes == bytes_on_disk(path)[1] > 30 * 40
    assert store.forget_before(1_010) == 10
    assert (store.rows, store.size_bytes) == bytes_on_disk(path) and store.dropped == 0  # retention, not a drop
    store.close()
    reopened = DeadLetters(path)
    assert (reopened.rows, reopened.size_bytes) == bytes_on_disk(path)
    reopened.close()


def test_filters_combine_and_the_cursor_pages_without_repeats(tmp_path: Path) -> None:
    store = DeadLetters(tmp_path / "d.db")
    for i in range(300):
        store.add(letter(i, kind=("gate", "elevator", "camera")[i % 3], reason=("not_json", "invalid")[i % 2]))
    store.flush()
    where = Filter(reason="invalid", kind="gate", since_ms=1_100, until_ms=1_250)
    expected = [i for i in range(300) if i % 2 == 1 and i % 3 == 0 and 100 <= i <= 250][::-1]
    seen, cursor = [], None
    while True:
        rows, cursor = store.page(7, Filter(where.reason, where.kind, where.since_ms, where.until_ms, cursor))
        seen += [row["received"] - 1_000 for row in rows]
        if cursor is None:
            break
    assert seen == expected and len(expected) > 7 * 3
    store.close()


def test_the_filters_have_indexes(tmp_path: Path) -> None:
    store = DeadLetters(tmp_path / "d.db")
    with sqlite3.connect(tmp_path / "d.db") as db:
        for column, index in (("reason", "rejected_reason"), ("kind", "rejected_kind"),
                              ("received_ms", "rejected_time")):
            plan = " ".join(row[-1] for row in db.execute(
                f"EXPLAIN QUERY PLAN SELECT id FROM rejected WHERE {column} = 1 ORDER BY id DESC LIMIT 5"))
            assert index in plan, plan
    store.close()


POINTS = [Point("elevator", {"site": "s1", "device": "e 1"}, {"floor": 3}, 1),
          Point("gate_event", {"site": "s1", "device": "g,1", "type": "passage"}, {"plate": "琼A12345"}, 2),
          Point("device_state", {"site": "s1", "kind": "camera", "device": "c1"}, {"online": True}, 3)]


@pytest.mark.parametrize("point, kind", list(zip(POINTS, ["elevator", "gate", "camera"], strict=True)))
def test_a_refused_point_is_kept_under_its_kind_in_either_wire_format(tmp_path: Path, point: Point, kind: str) -> None:
    letters = DeadLetters(tmp_path / "dl.db")
    letters.keep_refused(PointsRejected([encode([point])], "conflict"))
    letters.keep_refused(PointsRejected([points_json([point])], "conflict"))
    assert [row["kind"] for row in letters.page(10, Filter(kind=kind))[0]] == [kind, kind]


def test_what_cannot_be_told_is_kept_without_a_kind() -> None:
    assert [refused_kind(body) for body in (b"", b"garbage", b"[1", b"[]", b"pump,site=s x=1 1")] == [""] * 5
