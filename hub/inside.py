"""Vehicles inside each site right now: plates in minus plates out, for the big screen's count.

What counts is declared by the one kind with an `inside` spec (`devices.base.InsideSpec`; the gate:
every accepted passage it let through, `allowed`, or `manual` after a guard's check), and the count is
rebuilt at start from the store's passages of the
last `window_ms`, so a restart does not zero the count. A plate whose last entry
is older than the window no longer counts (a missed exit must not stay inside
for ever, and a rebuilt tracker could not know about it either).

Plates are personal data: they stay in this process's memory and only counts
leave it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from devices import REGISTRY
from devices.base import Accepted, DeviceKind, InsideSpec
from hub.state import DeviceState
from hub.storage.base import Storage, StorageError

log = logging.getLogger(__name__)

REBUILD_CHUNK_MS = 86_400_000
"""The store is read a day at a time, oldest first: memory stays bounded by a day's passages."""
REBUILD_DAY_LIMIT = 1_000_000
RETRY_S = 5.0


class InsideTracker:
    """Plates inside per site, with the time each came in."""

    def __init__(self, window_ms: int, kinds: Mapping[str, DeviceKind] = REGISTRY) -> None:
        self.window_ms = window_ms
        found = [(name, k.inside) for name, k in kinds.items() if k.inside is not None]
        if len(found) > 1:
            raise ValueError(f"only one kind may count what is inside; {', '.join(n for n, _ in found)} do")
        self.kind: str | None = found[0][0] if found else None
        self.spec: InsideSpec | None = found[0][1] if found else None
        self.ready = False
        """False until the store's history has been replayed; counts may be low until then."""
        self._inside: dict[str, dict[str, int]] = {}
        self._held: list[tuple[str, str, str, int]] | None = []
        """Passages heard while rebuilding, replayed after the stored ones (None once ready)."""

    def on_message(self, msg: Accepted, state: DeviceState) -> None:
        """Pipeline listener: fold in a passage the gate let through."""
        if msg.kind != self.kind or msg.channel != "event":
            return
        spec: Any = self.spec
        payload: Any = msg.payload
        if payload.type != spec.event or getattr(payload, spec.decision) not in spec.let_through:
            return
        key, direction = getattr(payload, spec.key), getattr(payload, spec.direction)
        if self._held is not None:
            self._held.append((msg.site, key, direction, msg.time_ms))
        self._apply(msg.site, key, direction, msg.time_ms)

    def _apply(self, site: str, plate: str, direction: str, time_ms: int) -> None:
        plates = self._inside.setdefault(site, {})
        if direction == "in":
            plates[plate] = time_ms
        elif plates.get(plate, time_ms) <= time_ms:  # an exit older than the entry is a late delivery
            plates.pop(plate, None)

    def count(self, site: str | None, now_ms: int) -> int:
        """Vehicles inside one site (or all), entered within the window."""
        since = now_ms - self.window_ms
        sites = [self._inside.get(site, {})] if site else list(self._inside.values())
        return sum(1 for plates in sites for t in plates.values() if t >= since)

    async def rebuild(self, storage: Storage) -> None:
        """Replay the window's stored passages, oldest first, then what arrived meanwhile; retry while the store is
        away. Runs as a task at start, so the hub serves at once."""
        while True:
            try:
                stored = await self._replay_store(storage)
                break
            except StorageError as exc:
                log.warning("vehicles inside: store unavailable (%s); retrying in %.0f s", exc, RETRY_S)
                await asyncio.sleep(RETRY_S)
        held, self._held = self._held or [], None
        for passage in held:  # heard after the replay began; some may be in the store too: replaying is idempotent
            self._apply(*passage)
        self.ready = True
        log.info("vehicles inside rebuilt from %d stored passages: %d inside", stored,
                 self.count(None, int(time.time() * 1000)))

    async def _replay_store(self, storage: Storage) -> int:
        self._inside = {}
        spec = self.spec
        if spec is None:
            return 0
        now_ms = int(time.time() * 1000)
        start = now_ms - self.window_ms
        seen = 0
        for since in range(start, now_ms + 1, REBUILD_CHUNK_MS):
            until = min(since + REBUILD_CHUNK_MS - 1, now_ms)
            rows = await storage.query_points([f"{self.kind}_event"], {"type": spec.event}, since, until,
                                              REBUILD_DAY_LIMIT)
            if len(rows) == REBUILD_DAY_LIMIT:
                log.warning("vehicles inside: more than %d passages in a day; the oldest are skipped",
                            REBUILD_DAY_LIMIT)
            for _, time_ms, columns in reversed(rows):
                if columns.get(spec.decision) in spec.let_through and spec.key in columns:
                    self._apply(str(columns.get("site", "")), str(columns[spec.key]), str(columns.get(spec.direction)),
                                time_ms)
            seen += len(rows)
        return seen
