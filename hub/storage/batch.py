"""Points gathered for one outbox batch, in their store's wire format: adding a point is its check.

The pipeline adds each accepted message's points as it handles it, and the
outbox commits what was added in one transaction. Encoding at `add` means a
point is encoded once, and that encoding is the proof the store can keep it:
a name with a backslash, or an integer beyond 64 bits, raises `Unstorable`
there, so the message is dead-lettered instead of failing a whole commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from devices.base import Point
from hub.storage import lineproto


class Batch(Protocol):
    def add(self, points: Sequence[Point]) -> None:
        """Keep all of `points` or, raising `lineproto.Unstorable`, none of them."""

    def __len__(self) -> int:
        """Points kept (a point without a storable field is dropped at `add`, as the store would drop it)."""

    def body(self) -> bytes:
        """The batch as the store's write body."""


class LineBatch:
    """Line protocol, one line made per point at `add` (`lineproto.line` refuses what InfluxDB cannot keep)."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines: list[str] = []

    def add(self, points: Sequence[Point]) -> None:
        line = lineproto.line
        if len(points) == 1:  # nearly every message: no list of one to build
            text = line(points[0])
            if text is not None:
                self._lines.append(text)
            return
        self._lines.extend([text for p in points if (text := line(p)) is not None])

    def __len__(self) -> int:
        return len(self._lines)

    def body(self) -> bytes:
        return "\n".join(self._lines).encode()


class PointBatch:
    """Points kept as they are, checked at `add` (`lineproto.check`), encoded by `encode` at `body` (points JSON
    is one call for the whole batch)."""

    __slots__ = ("_encode", "_points")

    def __init__(self, encode: Callable[[Sequence[Point]], bytes]) -> None:
        self._encode = encode
        self._points: list[Point] = []

    def add(self, points: Sequence[Point]) -> None:
        for point in points:
            lineproto.check(point)
        self._points.extend(points)

    def __len__(self) -> int:
        return len(self._points)

    def body(self) -> bytes:
        return self._encode(self._points)
