from datetime import datetime, timedelta, timezone

from hub.ingest.normalize import MAX_FUTURE_MS, RecentKeys, SeqStats, point_time, track_seq

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


def test_recent_keys_forgets_the_oldest() -> None:
    keys = RecentKeys(capacity=3)
    assert [keys.seen(k) for k in "abca"] == [False, False, False, True]
    keys.seen("d")  # a lookup does not refresh a key, so "a" is still the oldest and goes
    assert keys.seen("a") is False
    assert len(keys) == 3


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
