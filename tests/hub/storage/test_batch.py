"""Batches in a store's wire format: adding points is their check, all or nothing, encoded once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devices.base import Point
from hub.storage.base import points_from_json, points_json
from hub.storage.batch import Batch, LineBatch, PointBatch
from hub.storage.lineproto import Unstorable, encode

pytestmark = pytest.mark.unit

GOOD = [Point("elevator", {"site": "s1", "device": "e1"}, {"floor": 3, "door": "open"}, 1_000),
        Point("elevator", {"site": "s1", "device": "e2"}, {"speed_mps": 1.5}, 1_001)]
BIG_INT = Point("elevator", {"site": "s1", "device": "e3"}, {"floor": 2**63}, 1_002)
BAD_NAME = Point("elevator", {"site": "s1", "device": "e\\4"}, {"floor": 1}, 1_003)
NO_FIELD = Point("elevator", {"site": "s1", "device": "e5"}, {"speed_mps": float("nan")}, 1_004)


MAKERS: list[Callable[[], Batch]] = [LineBatch, lambda: PointBatch(points_json)]


@pytest.mark.parametrize("make", MAKERS, ids=["lines", "points"])
@pytest.mark.parametrize("bad", [BIG_INT, BAD_NAME], ids=["int beyond 64 bits", "backslash in a tag"])
def test_a_message_with_one_unstorable_point_adds_none_of_its_points(make: Callable[[], Batch], bad: Point) -> None:
    batch = make()
    batch.add(GOOD[:1])
    with pytest.raises(Unstorable):
        batch.add([GOOD[1], bad])
    assert len(batch) == 1
    with pytest.raises(Unstorable):
        batch.add([bad])
    assert len(batch) == 1


def test_lines_are_what_encode_makes_and_a_point_without_a_storable_field_is_left_out() -> None:
    batch = LineBatch()
    for point in GOOD:
        batch.add([point])
    batch.add([NO_FIELD])
    assert len(batch) == 2 and batch.body() == encode(GOOD)


def test_points_come_back_as_added() -> None:
    batch = PointBatch(points_json)
    batch.add(GOOD)
    assert len(batch) == 2 and points_from_json(batch.body()) == GOOD


def test_encode_leaves_a_64_bit_overflow_to_the_server_but_never_a_bad_name() -> None:
    """The store's own `write` refuses a too-large integer for that point alone, as InfluxDB does."""
    assert b"floor=9223372036854775808i" in encode([BIG_INT])
    with pytest.raises(Unstorable):
        encode([BAD_NAME])
