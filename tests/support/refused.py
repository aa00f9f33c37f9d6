"""What the outbox writer announces as refused, collected the way the hub hears it (through `hub.events`)."""

from __future__ import annotations

from collections.abc import Callable

from hub.events import Events, PointsRejected


def collecting(refused: list[tuple[list[bytes], str]]) -> Callable[[PointsRejected], bool]:
    """An `announce` for a `Writer` that appends (bodies, reason) of each `PointsRejected` to `refused`."""
    events = Events()
    events.on(PointsRejected, "test", lambda event: refused.append((list(event.bodies), event.reason)))
    return events.emit
