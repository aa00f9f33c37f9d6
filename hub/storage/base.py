"""The storage interface both backends implement, and the queries they answer.

The hub writes batches of `Point`s (the contract's storage schema, section 5) and
reads events back for the API. InfluxDB and the embedded store pass one shared
test suite (`tests/hub/storage/test_storage.py`), so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson

from devices.base import Point

if TYPE_CHECKING:
    from hub.storage.batch import Batch

Aggregate = Literal["count", "sum", "mean", "max", "min"]
INCREASE_LOOKBACK_MS = 86_400_000
"""How far before a range `Storage.increase` looks for each register's last reading: a day, as every meter
reports at least daily; a meter silent longer has its first step in the range uncounted."""


def empty_bucket(fn: Aggregate) -> float | None:
    """An empty bucket's value, as InfluxQL fills it: a count of 0, else no value."""
    return 0 if fn == "count" else None


def buckets(since_ms: int, until_ms: int, every_ms: int, offset_ms: int = 0) -> list[int]:
    """Start times of the time buckets covering [since_ms, until_ms), as InfluxQL's GROUP BY time() makes them."""
    first = (since_ms - offset_ms) // every_ms * every_ms + offset_ms
    return list(range(first, until_ms, every_ms))


class StorageError(Exception):
    """Base of storage failures."""


class StorageUnavailable(StorageError):
    """The store cannot be reached or is overloaded: retry later, the data is still good."""


class StorageRejected(StorageError):
    """The store refused the data itself (e.g. a field type conflict): retrying cannot help."""


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters of `GET /api/events`; times are epoch milliseconds, bounds inclusive."""

    site: str | None = None
    kind: str | None = None
    device: str | None = None
    type: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    limit: int = 100

    def where(self) -> dict[str, str]:
        """Tag equalities of this query."""
        pairs = (("site", self.site), ("device", self.device), ("type", self.type))
        return {tag: value for tag, value in pairs if value is not None}


@dataclass(frozen=True, slots=True)
class AggregateQuery:
    """The arguments of one `Storage.aggregate`, so that several can go to the store at once."""

    measurement: str
    fn: Aggregate
    field: str
    where: dict[str, str]
    since_ms: int
    until_ms: int
    every_ms: int
    offset_ms: int = 0

    @property
    def buckets(self) -> list[int]:
        return buckets(self.since_ms, self.until_ms, self.every_ms, self.offset_ms)

    @property
    def empty(self) -> float | None:
        return empty_bucket(self.fn)


def event_measurements(kind: str | None) -> list[str]:
    """The `{kind}_event` measurements a query covers: one kind, or all of them."""
    from devices import REGISTRY

    return [f"{k}_event" for k in ([kind] if kind else sorted(REGISTRY))]


POINTS_JSON = "points-json"
"""The neutral wire format: a batch as a JSON array of points. Any store can read it (`points_from_json`)."""


def points_json(points: Sequence[Point]) -> bytes:
    return orjson.dumps(points, default=tuple)  # a Point is a tuple subclass, which orjson leaves to us


def points_from_json(body: bytes) -> list[Point]:
    return [Point(*row) for row in orjson.loads(body)]


def split_points_json(body: bytes) -> list[bytes]:
    """A points-JSON body as one body per point (its rows re-encoded as they were)."""
    rows = orjson.loads(body) if body else []
    if not isinstance(rows, list):
        raise ValueError("a points-JSON body is an array")
    return [b"[" + orjson.dumps(row) + b"]" for row in rows]


class WireFormat(Protocol):
    """How a store wants its batches as bytes; the outbox keeps them in this form.

    Encoding once, as the pipeline accepts a point, means the writer only joins
    bytes: InfluxDB's line protocol is made once per point, never parsed back.
    """

    wire_format: str
    """The name kept with every outbox batch, so a batch made for another store is never misread."""

    def encode(self, points: Sequence[Point]) -> bytes:
        """A batch as this store's write body (pure; may be empty when no point has a storable field)."""

    def batch(self) -> Batch:
        """An empty batch that encodes (and so checks) points as they are added (`hub.storage.batch`)."""

    def split(self, body: bytes) -> list[bytes]:
        """A body `encode` made as one body per point, in order, so a refused batch can be cut down to the
        points the store refuses (`hub.storage.outbox.Writer`); raises ValueError for any other bytes."""


class Storage(WireFormat, Protocol):
    """What the hub needs from a time-series store."""

    name: str

    async def start(self) -> None:
        """Connect and create the database or bucket where the server needs it."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the store answers; never raises."""

    async def write(self, points: Sequence[Point]) -> None:
        """Store a batch; raises StorageUnavailable (retry) or StorageRejected (do not)."""

    async def write_encoded(self, bodies: Sequence[bytes]) -> None:
        """Store batches `encode` made, as one write; raises as `write` does."""

    async def query_points(
        self,
        measurements: Sequence[str],
        where: dict[str, str],
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 100,
    ) -> list[tuple[str, int, dict[str, Any]]]:
        """(measurement, time ms, tags and fields) of the newest matching points, newest first."""

    async def query_events(self, query: EventQuery) -> list[dict[str, Any]]:
        """Stored events, newest first, as flat dicts (see `event_row`)."""

    async def delete_events(self, kind: str, event_type: str, before_ms: int) -> None:
        """Forget one kind's events of one type older than `before_ms` (personal-data retention)."""

    async def aggregate(
        self, measurement: str, fn: Aggregate, field: str, where: dict[str, str], since_ms: int, until_ms: int,
        every_ms: int, offset_ms: int = 0,
    ) -> list[tuple[int, float | None]]:
        """fn(field) per time bucket over [since_ms, until_ms): every bucket, None (count: 0) when empty.

        `where` holds equalities on tags or string fields (e.g. a passage's `direction`).
        Buckets start at multiples of `every_ms` shifted by `offset_ms` (e.g. -8 h for days in China).
        """

    async def aggregate_many(self, queries: Sequence[AggregateQuery]) -> list[list[tuple[int, float | None]]]:
        """Several `aggregate`s at once, answers in the order asked: concurrent requests to InfluxDB, one pass
        over each measurement's time range in the embedded store."""

    async def aggregate_by(
        self, measurement: str, fn: Aggregate, field: str, where: dict[str, str], since_ms: int, until_ms: int,
        every_ms: int, by: Sequence[str], offset_ms: int = 0,
    ) -> dict[tuple[str, ...], list[tuple[int, float | None]]]:
        """`aggregate` per group of the tags `by` (InfluxQL `GROUP BY time(...), "tag", ...`), in one query.

        Keys are the groups' tag values in the order of `by` ('' for a missing tag); every group
        lists every bucket. A group with no point in the range is left out, as InfluxDB does.
        """

    async def increase(
        self, measurement: str, field: str, where: dict[str, str], since_ms: int, until_ms: int, every_ms: int,
        offset_ms: int = 0, lookback_ms: int = INCREASE_LOOKBACK_MS,
    ) -> list[tuple[int, float | None]]:
        """A cumulative register's growth per time bucket, summed over devices (InfluxQL: the sum per bucket of
        `non_negative_difference` per (site, device), in a subquery).

        Each step between a device's consecutive readings counts in the bucket of the later one, so a bucket
        holds exactly (its last reading) - (the last reading before it), edges included; the range widens to
        whole buckets, and the reading before it is looked for up to `lookback_ms` back. A step down (a
        replaced meter's register restarting) counts nothing, never less: the use between the old meter's last
        reading and the new one's first is lost, no more. `where` holds equalities on tags or fields; a reading
        `where` leaves out (one that does not say its `utility`, say) only merges its step into the next one.
        None for a bucket with no step at all.
        """


def keep_groups(
    groups: dict[tuple[str, ...], dict[int, float | None]], fn: Aggregate, since_ms: int, until_ms: int, every_ms: int,
    offset_ms: int,
) -> dict[tuple[str, ...], list[tuple[int, float | None]]]:
    """Both stores' grouped answers in one shape: every bucket, empty ones 0 (count) or None, idle groups out."""
    empty = empty_bucket(fn)
    times = buckets(since_ms, until_ms, every_ms, offset_ms)
    out = {}
    for key, found in sorted(groups.items()):
        if any(v != empty for v in found.values()):  # a point in range (count > 0, or any value at all)
            out[key] = list(zip(times, map(found.get, times, repeat(empty)), strict=True))  # C loops, for speed
    return out


class EventQueries:
    """`query_events` for any store that implements `query_points` (both backends share it)."""

    async def query_points(
        self,
        measurements: Sequence[str],
        where: dict[str, str],
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 100,
    ) -> list[tuple[str, int, dict[str, Any]]]:
        raise NotImplementedError

    async def query_events(self, query: EventQuery) -> list[dict[str, Any]]:
        rows = await self.query_points(event_measurements(query.kind), query.where(), query.since_ms,
                                       query.until_ms, query.limit)
        return [event_row(m, t, columns) for m, t, columns in rows]


def event_row(measurement: str, time_ms: int, columns: dict[str, Any]) -> dict[str, Any]:
    """The shape of one event as the API returns it, the same from every backend.

    `time` is epoch ms; `kind` comes from the measurement name (`{kind}_event`).
    """
    return {"time": time_ms, "kind": measurement.removesuffix("_event"), **columns}
