"""At most one log line per key per interval, with a count of the lines held back.

A device flooding garbage must not flood the log too: 37,500 WARNING lines in 30 s
bury everything else and cost more than the rejections. What a person needs is the
first instance (to see what is wrong) and how many followed. Counters and dead
letters still see every message; only the log is thinned. Pure: the clock is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

INTERVAL_S = 10.0


@dataclass(slots=True)
class _Window:
    started: float
    held: int = 0


@dataclass(frozen=True, slots=True)
class Held:
    """Lines held back for one key: how many, over how long."""

    key: Hashable
    count: int
    seconds: float


class RateGate:
    """Decides which lines to write: the first per key in each interval; counts the others.

    `admit(key)` says whether to write this line now, and returns the lines held back
    before it (to mention in it); `due()` returns what was held back in windows that
    are over, for a caller to report once a flood stops.
    """

    def __init__(self, interval_s: float = INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._windows: dict[Hashable, _Window] = {}

    def admit(self, key: Hashable) -> tuple[bool, Held | None]:
        """(write this line?, lines held back since the last one written, if any)."""
        now = self.clock()
        window = self._windows.get(key)
        if window is None:
            self._windows[key] = _Window(now)
            return True, None
        if now - window.started < self.interval_s:
            window.held += 1
            return False, None
        held = Held(key, window.held, now - window.started) if window.held else None
        self._windows[key] = _Window(now)
        return True, held

    def due(self) -> list[Held]:
        """What was held back in windows that are over; each is reported once. Quiet keys are forgotten."""
        now = self.clock()
        out = []
        for key, window in list(self._windows.items()):
            if now - window.started < self.interval_s:
                continue
            if window.held:
                out.append(Held(key, window.held, now - window.started))
                self._windows[key] = _Window(now)  # the summary is this window's line
            else:
                del self._windows[key]
        return out
