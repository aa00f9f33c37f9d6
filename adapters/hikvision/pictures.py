"""Plate and face snapshots kept on disk: personal data, so capped, swept after the personal-data retention
(like the events that link them), and never served to anyone below an operator (`push.Push.picture`).

File I/O only, no HTTP: the edge calls `save` and `sweep` from a worker thread.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from adapters.hikvision.body import Picture
from hub import topics

MAX_PICTURES_BYTES = 2 * 2**30
"""The pictures kept, at most (oldest deleted first at each sweep)."""
SWEEP_EVERY_S = 3600.0
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,159}")
_EXT = {"image/jpeg": ".jpg", "image/pjpeg": ".jpg", "image/png": ".png", "image/bmp": ".bmp"}


class Pictures:
    """Snapshots on disk: one file per picture, named after its event, swept by age and total size."""

    def __init__(self, root: Path, retention_s: float, max_bytes: int = MAX_PICTURES_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.retention_s = retention_s
        self._swept = 0.0

    def path(self, site: str, device: str, name: str) -> Path | None:
        if not (topics.SITE_RE.fullmatch(site) and topics.DEVICE_RE.fullmatch(device) and _NAME.fullmatch(name)):
            return None
        return self.root / site / device / name

    def save(self, site: str, device: str, event_id: str, pictures: Sequence[Picture]) -> list[str]:
        """Write the pictures (temp file, then rename: a reader never sees half of one); their file names."""
        names = []
        folder = self.root / site / device
        folder.mkdir(parents=True, exist_ok=True)
        for number, picture in enumerate(pictures):
            name = f"{event_id}-{number}{_EXT.get(picture.content_type, '.img')}"
            temp = folder / f".{name}.tmp"
            temp.write_bytes(picture.data)
            os.replace(temp, folder / name)
            names.append(name)
        return names

    def sweep_due(self, now: float) -> bool:
        """Whether a sweep should run now (at most one per SWEEP_EVERY_S: the first caller takes it)."""
        if now - self._swept < SWEEP_EVERY_S:
            return False
        self._swept = now
        return True

    def sweep(self, now: float) -> int:
        """Delete pictures older than the retention, then the oldest while the total is over the cap."""
        files = []
        for path in self.root.rglob("*") if self.root.exists() else ():
            try:
                stat = path.stat()
            except OSError:  # deleted meanwhile
                continue
            if path.is_file():
                files.append((stat.st_mtime, stat.st_size, path))
        files.sort(key=lambda f: f[0])
        total = sum(size for _, size, _ in files)
        deleted = 0
        for mtime, size, path in files:
            if mtime >= now - self.retention_s and total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            deleted += 1
        return deleted
