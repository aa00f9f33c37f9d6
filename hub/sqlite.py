"""Opening the hub's own SQLite files (outbox, dead letters) the same way everywhere."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path, schema: str) -> sqlite3.Connection:
    """A WAL-mode connection with `schema` applied.

    WAL with synchronous=NORMAL survives a crash of the hub (the kernel holds
    the data) with no fsync per commit; only a power cut may lose the last
    moments. `isolation_level=None` leaves transactions to the callers.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    return db
