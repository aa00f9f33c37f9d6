"""The storage interface both backends implement, and the queries they answer.

The hub writes batches of `Point`s (the contract's storage schema, section 5) and
reads events back for the API. InfluxDB and the embedded store pass one shared
test suite (`tests/integration/test_storage.py`), so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from devices.base import Point


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


class Storage(Protocol):
    """What the hub needs from a time-series store."""

    name: str

    async def start(self) -> None:
        """Connect and create the database or bucket where the server needs it."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the store answers; never raises."""

    async def write(self, points: Sequence[Point]) -> None:
        """Store a batch; raises StorageUnavailable (retry) or StorageRejected (do not)."""

    async def query_events(self, query: EventQuery) -> list[dict[str, Any]]:
        """Stored events, newest first, as flat dicts (see `event_row`)."""


def event_row(measurement: str, time_ms: int, tags: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The shape of one event as the API returns it, the same from every backend.

    `time` is epoch ms; `kind` comes from the measurement name (`{kind}_event`).
    """
    row: dict[str, Any] = {"time": time_ms, "kind": measurement.removesuffix("_event")}
    row.update(tags)
    row.update((k, v) for k, v in fields.items() if v is not None)
    return row
