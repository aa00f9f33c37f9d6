"""The outbox's size bookkeeping: a running total that matches the file, across a reopen, against its cap."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from devices.base import Point
from hub.storage.outbox import NEAR_FULL_FILL, Outbox


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
    ids, points = outbox.take(max_points=310)  # the first two batches
    assert len(ids) == 2 and len(points) == 310
    outbox.ack(ids, len(points))
    assert outbox.size_bytes == bytes_on_disk(path) < total
    rest, points = outbox.take()
    outbox.ack(rest, len(points))
    assert outbox.size_bytes == 0 == bytes_on_disk(path) and outbox.depth == 0
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
    ids, points = outbox.take(max_points=50 * 5)
    outbox.ack(ids, len(points))
    assert outbox.fill == 6 / 20 and outbox.size_bytes == bytes_on_disk(path)
    outbox.close()
