"""A batch the store refuses is cut down to the points it refuses: only those are dead-lettered.

Both backends (`storage` runs each test on InfluxDB 1.6 and the embedded store): a field type
conflict in two points of a 50-point part from several devices must not cost the other 48.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from devices.base import Point
from hub.storage import outbox as outbox_module
from hub.storage.base import Storage
from hub.storage.embedded import EmbeddedStorage
from hub.storage.outbox import Outbox, Writer
from tests.support.refused import collecting

pytestmark = [pytest.mark.integration, pytest.mark.services]

NOW = int(time.time() * 1000)


def part(site: str) -> tuple[list[Point], list[Point]]:
    """50 points of 5 devices, a plate among their fields; the 2 bad ones send a float where a string is stored."""
    good, bad = [], []
    for i in range(50):
        fields: dict[str, object] = {"floor": i, "load": 0.5 * i, "note": f"plate 琼A{i:05d}\nline two"}
        if i in (7, 31):
            fields["vendor_x"] = 1.5
        point = Point("elevator", {"site": site, "device": f"e{i % 5}"}, fields, NOW - 10_000 + i)
        (bad if "vendor_x" in fields else good).append(point)
    return good, bad


Refused = list[tuple[list[bytes], str]]


async def refused_by(storage: Storage, tmp_path: Path, points: list[Point]) -> tuple[Writer, Refused]:
    # The field is a string in this shard before the part comes (InfluxDB 1.x keeps field types per shard).
    await storage.write([Point("elevator", {"site": "seed", "device": "e9"}, {"vendor_x": "text"}, NOW - 20_000)])
    outbox = Outbox(tmp_path / "outbox.db", wire=storage)
    for start in range(0, len(points), 20):  # three outbox batches in one part
        outbox.put(points[start:start + 20])
    refused: Refused = []
    writer = Writer(outbox, storage, collecting(refused))
    assert await writer.write_once()
    assert outbox.depth == 0
    outbox.close()
    return writer, refused


async def test_only_the_refused_points_of_a_part_go_to_the_dead_letters(storage: Storage, tmp_path: Path) -> None:
    good, bad = part("s1")
    points = sorted(good + bad, key=lambda p: p.time_ms)
    writer, refused = await refused_by(storage, tmp_path, points)
    assert [bodies for bodies, _ in refused] == [[storage.encode([p])] for p in bad]
    assert all("conflict" in reason and "vendor_x" in reason for _, reason in refused)
    assert writer.stats.rejected_points == 2 and writer.stats.points == 48
    assert 0 < writer.stats.split_writes <= outbox_module.SPLIT_WRITES_MAX
    stored = await storage.query_points(["elevator"], {"site": "s1"}, limit=100)
    assert sorted((t, columns["device"], columns["floor"]) for _, t, columns in stored) == sorted(
        (p.time_ms, p.tags["device"], p.fields["floor"]) for p in good)
    assert all("vendor_x" not in columns for _, _, columns in stored)


async def test_past_its_request_budget_the_rest_of_a_part_is_dead_lettered_as_it_is_and_says_so(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "SPLIT_WRITES_MAX", 4)
    good, bad = part("s2")
    points = sorted(good + bad, key=lambda p: p.time_ms)
    writer, refused = await refused_by(storage, tmp_path, points)
    assert writer.stats.split_writes == 4
    kept = [one for bodies, _ in refused for one in bodies]
    assert all(storage.encode([p]) in kept for p in bad)  # nothing refused is lost
    assert len(kept) == 44 and writer.stats.rejected_points == 44  # the first 6 points were stored alone
    assert any("not split further after 4 requests" in reason for _, reason in refused)


async def test_a_store_that_goes_away_while_a_part_is_split_keeps_the_part_for_later(tmp_path: Path) -> None:
    storage = EmbeddedStorage(tmp_path / "store.db")
    await storage.start()
    await storage.write([Point("elevator", {"site": "seed", "device": "e9"}, {"vendor_x": "text"}, NOW - 20_000)])
    good, bad = part("s3")
    outbox = Outbox(tmp_path / "outbox.db", wire=storage)
    outbox.put(sorted(good + bad, key=lambda p: p.time_ms))
    refused: Refused = []
    writer = Writer(outbox, storage, collecting(refused))
    write = storage.write_encoded
    calls = 0

    async def then_gone(bodies: Sequence[bytes]) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # the whole part, then the first half; then the store is closed (its file stays)
            await storage.close()
        await write(bodies)

    storage.write_encoded = then_gone  # type: ignore[method-assign]
    try:
        assert not await writer.write_once()
        assert refused == [] and outbox.depth == 50 and writer.stats.failures == 1
        await storage.start()
        storage.write_encoded = write  # type: ignore[method-assign]
        assert await writer.write_once()  # all again: what was stored is only written over with itself
        assert [bodies for bodies, _ in refused] == [[storage.encode([p])] for p in bad]
        assert outbox.depth == 0 and len(await storage.query_points(["elevator"], {"site": "s3"}, limit=100)) == 48
    finally:
        outbox.close()
        await storage.close()
