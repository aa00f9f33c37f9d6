from array import array
from datetime import datetime, timedelta, timezone

import pytest

from hub.ingest.normalize import MAX_FUTURE_MS, SeqStats, point_time, track_seq
from hub.ingest.redelivery import Deliveries, EventKeys, RecentKeys, event_digest

pytestmark = pytest.mark.unit

NOW = 1_790_000_000_000


def test_point_time_uses_device_ts_in_either_form() -> None:
    assert point_time(NOW - 1500, NOW) == (NOW - 1500, 1500, True)
    aware = datetime.fromtimestamp((NOW - 2000) / 1000, tz=timezone(timedelta(hours=8)))
    assert point_time(aware, NOW) == (NOW - 2000, 2000, True)


def test_point_time_falls_back_to_receive_time() -> None:
    assert point_time(None, NOW) == (NOW, 0, True)
    assert point_time(NOW + MAX_FUTURE_MS + 1, NOW) == (NOW, 0, False)  # clock ahead
    assert point_time(86_400_000, NOW) == (NOW, 0, False)  # 1970: clock never set
    assert point_time(NOW + 1000, NOW) == (NOW + 1000, -1000, True)  # small skew is believed


def test_track_seq_counts_gaps_duplicates_and_resets() -> None:
    stats = SeqStats()
    outcomes = [track_seq(stats, s) for s in (50, 51, 55, 55, 53, 56, 0, 1)]
    assert outcomes == ["ok", "ok", "gap", "duplicate", "duplicate", "ok", "reset", "ok"]
    assert (stats.gaps, stats.duplicates, stats.resets, stats.last) == (3, 2, 1, 1)


def test_event_keys_keep_at_least_the_last_capacity_and_queue_new_ones_for_the_commit() -> None:
    keys = EventKeys(capacity=3)
    assert [keys.seen(k, 10) for k in "abca"] == [False, False, False, True]
    assert [keys.seen(k, 11) for k in "def"] == [False, False, False]
    assert keys.seen("a", 11) is True  # 6 keys back: within 2 x capacity, still known
    assert keys.seen("g", 12) is False  # a, b, c's generation goes
    assert [keys.seen(k, 12) for k in "agd"] == [False, True, True]  # a lookup does not refresh a key
    assert len(keys) <= 6
    assert [(d, t) for d, t in keys.new][:4] == [(event_digest(k), t) for k, t in
                                                 (("a", 10), ("b", 10), ("c", 10), ("d", 11))]
    keys.committed()
    assert keys.new == []


def test_recent_keys_remember_at_least_capacity_and_at_most_twice_it() -> None:
    recent = RecentKeys(capacity=1000)
    for key in range(10_000):
        assert recent.add(key)
        assert 1000 <= len(recent) <= 2000 or len(recent) == key + 1
        assert not recent.add(key - 999) if key >= 999 else True  # the last 1,000 are always known
    assert sum(not recent.add(k) for k in range(8_000, 10_000)) >= 1000


def test_event_digest_is_stable_across_processes() -> None:
    import subprocess
    import sys

    key = (("s1", "gate", "g1"), "ev-1", None, 7, None)
    other = subprocess.run([sys.executable, "-c", "from hub.ingest.redelivery import event_digest; "
                            f"print(event_digest({key!r}))"], capture_output=True, text=True, check=True)
    assert int(other.stdout) == event_digest(key)
    assert 0 <= event_digest(key) < 2**63  # fits SQLite's signed integers


def test_deliveries_know_a_committed_key_and_forget_beyond_the_window() -> None:
    deliveries = Deliveries(kept=3)
    keys = [deliveries.key("c/s/gate/g1/event", pid, b"{}") for pid in range(1, 7)]
    assert len(set(keys)) == 6  # the packet id is part of the key
    assert deliveries.key("c/s/gate/g2/event", 1, b"{}") != keys[0]  # and so is the topic
    assert deliveries.key("c/s/gate/g1/event", 1, b"{ }") != keys[0]  # and the payload
    deliveries.new.append(keys[0])
    assert deliveries.seen(keys[0]) and not deliveries.seen(keys[1])  # noted, not yet committed
    deliveries.committed()
    for key in keys[1:4]:  # one commit each
        deliveries.new.append(key)
        deliveries.committed()
    assert not deliveries.seen(keys[0]) and all(deliveries.seen(k) for k in keys[1:4])  # 3 kept
    deliveries.new.extend(keys[4:6])
    deliveries.committed()
    assert [deliveries.seen(k) for k in keys] == [False, False, False, True, True, True]
    assert list(deliveries.new) == []
    fresh = Deliveries(kept=3)
    fresh.load(array("Q", keys))
    assert all(fresh.seen(k) for k in keys[3:]) and list(fresh.new) == []


def test_deliveries_drop_their_lookup_set_when_no_dup_comes_and_rebuild_it_at_the_next() -> None:
    from hub.ingest import redelivery

    deliveries = Deliveries(kept=10)
    keys = [deliveries.key("c/s/e/1/telemetry", pid, b"{}") for pid in range(1, 6)]
    deliveries.new.extend(keys)
    deliveries.committed()
    assert deliveries.seen(keys[0]) and len(deliveries._known) == 5
    for _ in range(redelivery.FORGET_SET_AFTER_COMMITS + 1):
        deliveries.committed()  # commits with no DUP among them
    assert deliveries._known == set()
    assert deliveries.seen(keys[4]) and not deliveries.seen(keys[4] + 1)  # rebuilt from the kept keys


def test_series_clock_separates_distinct_points_but_not_redeliveries() -> None:
    from hub.ingest.normalize import SeriesClock

    clock = SeriesClock()
    assert clock.place("s", 1000, b"a") == 1000
    assert clock.place("s", 1000, b"b") == 1001  # another message in the same ms
    assert clock.place("s", 1000, b"c") == 1002
    assert clock.place("s", 1000, b"c") == 1002  # the same message again: same point
    assert clock.place("other", 1000, b"x") == 1000  # other series are independent
    assert clock.place("s", 2000, b"d") == 2000


def test_series_clock_never_lands_on_a_time_it_just_gave() -> None:
    from hub.ingest.normalize import SeriesClock

    clock = SeriesClock()
    given = [clock.place("s", t, bytes([i])) for i, t in enumerate([1000, 1000, 1000, 1001, 1002, 1010])]
    assert given == [1000, 1001, 1002, 1003, 1004, 1010]


def test_series_clock_remembers_more_than_the_last_point() -> None:
    from hub.ingest.normalize import SeriesClock

    clock = SeriesClock()
    # receive time, then a device `ts` earlier, then receive time again in the same ms
    assert [clock.place("s", t, raw) for t, raw in [(1000, b"a"), (900, b"b"), (1000, b"c")]] == [1000, 900, 1001]
    assert clock.place("s", 1000, b"c") == 1001  # its redelivery finds the time it was given


def test_series_clock_spreads_a_long_burst() -> None:
    from hub.ingest.normalize import SeriesClock

    clock = SeriesClock()
    assert [clock.place("s", 1000, bytes([i])) for i in range(30)] == list(range(1000, 1030))
    assert clock.place("s", 1000, b"late") == 1030


def test_recent_keys_take_their_memory_once_at_construction() -> None:
    """Flat RSS in a soak: filling and turning the generations allocates nothing that stays (the sets it replaced
    grew to about 80 bytes a key as they filled)."""
    import tracemalloc

    tracemalloc.start()
    try:
        recent = RecentKeys(capacity=20_000)
        built, _ = tracemalloc.get_traced_memory()
        for key in range(-50_000, 50_000):  # five turns, 0 included
            recent.add(key * 2_654_435_761)
        grown, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert built <= 20 * 2 * 20_000 * 2  # two tables of at most 4 x capacity 8-byte slots, with some slack
    assert grown - built < 4096
    assert not recent.add(49_999 * 2_654_435_761) and recent.add(1)
