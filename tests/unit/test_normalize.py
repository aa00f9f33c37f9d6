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
