"""Settle a message's time, and count sequence gaps and duplicates.

Pure bookkeeping over small in-memory tables; no I/O. The point time is the
device's `ts` when it is plausible, else the receive time: a device whose clock
was never set (1970) or runs ahead must not scatter points across the years.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_FUTURE_MS = 5 * 60 * 1000
"""A `ts` further ahead of the receive time than this is a wrong clock, not a fact."""
MIN_TS_MS = 946_684_800_000
"""2000-01-01: anything earlier is an unset device clock."""


def point_time(ts: datetime | int | None, received_ms: int) -> tuple[int, int, bool]:
    """(point time ms, lag ms, clock_ok) for a payload's `ts`.

    `clock_ok` is False when the device gave a `ts` that was implausible and the
    receive time was used instead; lag is then 0.
    """
    if ts is None:
        return received_ms, 0, True
    ts_ms = ts if isinstance(ts, int) else int(ts.timestamp() * 1000)
    if ts_ms < MIN_TS_MS or ts_ms > received_ms + MAX_FUTURE_MS:
        return received_ms, 0, False
    return ts_ms, received_ms - ts_ms, True


@dataclass(slots=True)
class SeqStats:
    """Per-device sequence bookkeeping, shown with the device's live state."""

    last: int = -1
    gaps: int = 0
    duplicates: int = 0
    resets: int = 0


SEQ_RESET_BELOW = 16
"""A `seq` that falls back to a small number is a device restart, not a duplicate."""


def track_seq(stats: SeqStats, seq: int) -> str:
    """Update `stats` with a new `seq`; returns 'ok', 'gap', 'duplicate' or 'reset'."""
    last = stats.last
    if last < 0 or seq == last + 1:
        outcome = "ok"
    elif seq > last:
        stats.gaps += seq - last - 1
        outcome = "gap"
    elif seq < min(last, SEQ_RESET_BELOW):
        stats.resets += 1
        outcome = "reset"
    else:
        stats.duplicates += 1  # a repeat or a late straggler: keep the high-water mark
        return "duplicate"
    stats.last = seq
    return outcome


def event_key(device_key: Hashable, payload: Any) -> Hashable | None:
    """The identity of an event for de-duplication, or None when it has no `id`.

    A camera detection keeps one `id` through its `start`/`update`/`end` phases,
    so the id alone is not enough: phase, `seq` and `ts` tell the phases apart,
    while a redelivery repeats all of them.
    """
    event_id = getattr(payload, "id", None)
    if event_id is None:
        return None
    return (device_key, event_id, getattr(payload, "phase", None), payload.seq, payload.ts)


SERIES_MEMORY = 8
"""Payload hashes remembered per series, to recognise a redelivery of a recent point."""


@dataclass(slots=True)
class _Run:
    low: int
    high: int
    recent: dict[int, int]
    """time given -> payload hash, oldest first"""


class SeriesClock:
    """Keeps two different points of one series from sharing a timestamp.

    InfluxDB identifies a point by series and time, so a second message at the
    same millisecond (a burst stamped with one receive time, or a device that
    stamps whole seconds) would silently overwrite the first. A point asking for
    a time inside the series' latest run of given times moves just past it; a
    redelivery of a recent point gets the time that point was given, and so
    overwrites itself harmlessly.
    """

    def __init__(self) -> None:
        self._runs: dict[Hashable, _Run] = {}

    def place(self, series: Hashable, time_ms: int, raw: bytes) -> int:
        digest = hash(raw)
        run = self._runs.get(series)
        if run is None:
            self._runs[series] = _Run(time_ms, time_ms, {time_ms: digest})
            return time_ms
        if digest in run.recent.values():  # a redelivery (rare): the time that point was given
            for given, seen in run.recent.items():
                if seen == digest:
                    return given
        if run.low <= time_ms <= run.high:
            given = run.high = run.high + 1
        elif time_ms > run.high:
            given = run.low = run.high = time_ms
        else:  # older than the run: a backfill; step past any time it recently gave
            given = time_ms
            while given in run.recent:
                given += 1
        run.recent[given] = digest
        if len(run.recent) > SERIES_MEMORY:
            del run.recent[next(iter(run.recent))]
        return given
