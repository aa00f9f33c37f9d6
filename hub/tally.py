"""Today's figures of the last hour, counted as the hub accepts the events instead of read from the store.

`GET /api/overview` sums each kind's `TodayFigure`s since China midnight. The part of the day that has
settled is read from the store once and kept (`hub.settled`); what is left is the last hour or so, and
reading that costs InfluxDB as much as reading the whole day: its cost is per series (about 17,000
for 10,000 devices, camera x label), not per point. The hub sees every event it stores, so it counts
them here by minute, as the store would (`to_points` of the kind, the figure's measurement, every
`where` name equal as a tag or field), and the recent part costs a few dictionary sums.

It knows only what this hub accepted since it started (`since_ms`): before that, and for minutes this
hub did not ingest, the overview reads the store. A retained delivery is not counted (it is not
stored either); nor is an event before `since_ms`. With several hubs sharing the ingest, each sees
only part of it: give them no tally (`SMARTHUB_TODAY_TALLY=0`) and the overview reads the store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from devices.base import Accepted, DeviceKind, Point, TodayFigure

MINUTE_MS = 60_000
KEEP_MS = 3 * 3_600_000
"""Minutes older than this are dropped: the overview reads at most the last 75 minutes from here."""
SUMMABLE = frozenset({"count", "sum"})


class TodayTally:
    """Per (figure, site), the figure's count or sum per minute of event time, from the accepted events."""

    def __init__(self, kinds: Mapping[str, DeviceKind], now_ms: int) -> None:
        self.since_ms = -(-now_ms // MINUTE_MS) * MINUTE_MS
        """The first whole minute this tally saw from its start: earlier minutes are the store's to tell."""
        self._figures: dict[str, list[tuple[str, TodayFigure]]] = {}
        """kind -> its summable figures (a mean or a max does not add across parts: those are read from the store)"""
        for kind_name, kind in kinds.items():
            today = kind.overview.today if kind.overview else {}
            summable = [(name, f) for name, f in today.items() if f.aggregate in SUMMABLE]
            if summable:
                self._figures[kind_name] = summable
        self._kinds = kinds
        self._minutes: dict[tuple[str, str], defaultdict[int, float]] = {}
        self._newest_ms = now_ms

    def covers(self, figure: str) -> bool:
        return any(figure == name for figures in self._figures.values() for name, _ in figures)

    def on_message(self, msg: Accepted, _state: object = None) -> None:
        """A `MessageAccepted` handler: count an event in every figure its stored point matches."""
        if msg.kind not in self._figures or msg.channel != "event" or msg.retained:
            return
        self.count(msg.kind, msg.site, self._kinds[msg.kind].to_points(msg))

    def count(self, kind: str, site: str, points: Iterable[Point]) -> None:
        """Count stored points of a kind's events (`{kind}_event`) at a site; points before `since_ms` are not."""
        figures = self._figures.get(kind)
        if figures is None:
            return
        measurement = f"{kind}_event"
        for point in points:
            if point.measurement != measurement or point.time_ms < self.since_ms:
                continue
            minute = point.time_ms - point.time_ms % MINUTE_MS
            for name, figure in figures:
                if not _matches(point.tags, point.fields, figure.where):
                    continue
                value = point.fields.get(figure.field)
                if value is None or type(value) is str and figure.aggregate == "sum":
                    continue
                self._add((name, site), minute, 1.0 if figure.aggregate == "count" else float(value))
            if point.time_ms > self._newest_ms + MINUTE_MS:
                self._newest_ms = point.time_ms
                self._forget(point.time_ms - KEEP_MS)

    def _add(self, key: tuple[str, str], minute: int, value: float) -> None:
        per_minute = self._minutes.get(key)
        if per_minute is None:
            per_minute = self._minutes[key] = defaultdict(float)
        per_minute[minute] += value

    def _forget(self, before_ms: int) -> None:
        for per_minute in self._minutes.values():
            for minute in [m for m in per_minute if m < before_ms]:
                del per_minute[minute]

    def total(self, figure: str, site: str | None, since_ms: int, until_ms: int) -> float:
        """The figure over [since_ms, until_ms) for one site or all; both ends on minutes, since_ms >= since_ms of
        the tally (the caller reads the store for what lies before)."""
        if since_ms < self.since_ms:
            raise ValueError(f"the tally starts at {self.since_ms}, not {since_ms}")
        out = 0.0
        for (name, at_site), per_minute in self._minutes.items():
            if name == figure and (site is None or at_site == site):
                out += sum(v for m, v in per_minute.items() if since_ms <= m < until_ms)
        return out


def _matches(tags: Mapping[str, str], fields: Mapping[str, Any], where: Mapping[str, str]) -> bool:
    """Every `where` name equal as a tag or a field, as the store's `WHERE name = 'value'` reads it."""
    for name, wanted in where.items():
        value = tags.get(name)
        if value is None:
            value = fields.get(name)
        if value != wanted:
            return False
    return True
