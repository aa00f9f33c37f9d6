"""Who owns which partition: the same answer everywhere, balanced, and little movement when copies come and go."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.cluster.assign import Lease, assign, plan

pytestmark = pytest.mark.unit

SITES = [f"site-{i:02d}" for i in range(30)]


@given(st.sets(st.text(min_size=1, max_size=8), max_size=40), st.sets(st.text(min_size=1, max_size=6), min_size=1,
                                                                        max_size=6))
def test_every_partition_goes_to_a_live_copy_and_loads_differ_by_one_at_most(partitions: set[str],
                                                                            copies: set[str]) -> None:
    owners = assign(partitions, copies)
    assert set(owners) == partitions
    assert set(owners.values()) <= copies
    floor = len(partitions) // len(copies)
    for copy in copies:
        assert list(owners.values()).count(copy) in (floor, floor + 1)


def test_the_answer_does_not_depend_on_the_order_of_the_inputs() -> None:
    copies = ["a", "b", "c"]
    shuffled = SITES[:]
    random.Random(7).shuffle(shuffled)
    assert assign(SITES, copies) == assign(shuffled, list(reversed(copies)))


def test_a_small_city_is_balanced() -> None:
    owners = assign(SITES[:6], ["a", "b", "c"])
    assert sorted(list(owners.values()).count(c) for c in "abc") == [2, 2, 2]


@pytest.mark.parametrize("copies", [["a", "b", "c"], ["a", "b", "c", "d"], ["h1", "h2", "h3", "h4", "h5"]])
def test_a_copy_leaving_moves_its_own_partitions_and_few_others(copies: list[str]) -> None:
    before = assign(SITES, copies)
    gone = copies[0]
    after = assign(SITES, copies[1:])
    assert gone not in after.values()
    moved_from_survivors = [p for p in SITES if before[p] != gone and after[p] != before[p]]
    assert len(moved_from_survivors) <= len(SITES) // len(copies)  # a reshuffle would move about 2/3 of them


def test_a_copy_joining_takes_its_share_from_the_others_only() -> None:
    before = assign(SITES, ["a", "b", "c"])
    after = assign(SITES, ["a", "b", "c", "d"])
    taken = [p for p in SITES if after[p] == "d"]
    assert len(taken) in (7, 8)
    between_old = [p for p in SITES if after[p] != "d" and after[p] != before[p]]
    assert len(between_old) <= 4


def test_no_copies_no_owners() -> None:
    assert assign(SITES, []) == {}


NOW = 1_000_000


def lease(part: str, owner: str, epoch: int = 1, left_ms: int = 3_000) -> Lease:
    return Lease(part, owner, epoch, NOW + left_ms)


def test_a_free_or_expired_or_own_lease_is_acquired_a_live_foreign_one_waits() -> None:
    desired = {"s1": "me", "s2": "me", "s3": "me", "s4": "me"}
    leases = {"s2": lease("s2", "other", left_ms=-1), "s3": lease("s3", "other"), "s4": lease("s4", "me")}
    moves = plan("me", desired, leases, held=[], now_ms=NOW)
    assert moves.acquire == ("s1", "s2", "s4")
    assert moves.renew == () and moves.release == ()


def test_what_i_run_is_renewed_while_wanted_and_released_once_another_copy_is_wanted() -> None:
    desired = {"s1": "me", "s2": "other"}
    leases = {"s1": lease("s1", "me"), "s2": lease("s2", "me")}
    moves = plan("me", desired, leases, held=["s1", "s2"], now_ms=NOW)
    assert moves.renew == ("s1",)
    assert moves.release == ("s2",)
    assert moves.acquire == ()


def test_a_partition_whose_lease_i_lost_is_released_not_renewed() -> None:
    desired = {"s1": "me", "s2": "me"}
    leases = {"s1": lease("s1", "other", epoch=2), "s2": lease("s2", "me", left_ms=0)}
    moves = plan("me", desired, leases, held=["s1", "s2"], now_ms=NOW)
    assert moves.release == ("s1", "s2")
    assert moves.renew == ()
