"""The one store of API users and device accounts: `accounts.db` (SQLite, WAL) in the data directory.

Every process reads and writes it: the running hub, `smarthub user add` and
`smarthub device add`, `smarthub broker-files` (which also keeps the broker accounts of vendor systems
that publish on the broker themselves, Frigate's: `vendors`). Each change is one short
transaction on the rows it touches (never a rewrite of the whole set from a
copy in memory), so a CLI and the API changing accounts at the same moment
both keep their change, and the hub sees the other processes' changes at its
next read. The JSON files of earlier versions (`users.json`,
`credentials.json`) are taken in once, at the first open, and renamed to
`*.json.migrated`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from hub.sqlite import connect

FILE = "accounts.db"
BUSY_TIMEOUT_MS = 10_000
"""How long a writer waits for another process's transaction: each lasts microseconds, so this is only a bound."""
MIGRATED = ".migrated"

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS devices (
    site TEXT NOT NULL, kind TEXT NOT NULL, device TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (site, kind, device)
);
CREATE TABLE IF NOT EXISTS vendors (
    login TEXT PRIMARY KEY,
    hash TEXT NOT NULL
);
"""

Importer = Callable[[sqlite3.Connection, dict], None]  # type: ignore[type-arg]
"""Inserts the rows of one legacy JSON file, inside the open transaction."""


def _create_private(path: Path) -> None:
    """Token and password hashes: the file (and so its -wal and -shm) is the owner's alone from the start.

    O_EXCL matters: closing any descriptor of a file drops every POSIX lock this process holds on it,
    SQLite's included, so an open file is never opened and closed here (only one that did not exist)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


class AccountsDb:
    """One connection to `accounts.db`, shared by the threads of its process (hence the lock)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE
        data_dir.mkdir(parents=True, exist_ok=True)
        _create_private(self.path)
        self._db = connect(self.path, f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS};\n{SCHEMA}")
        self._lock = threading.Lock()

    def read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple]:  # type: ignore[type-arg]
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: BEGIN IMMEDIATE takes the write lock first, so no other writer slips in between."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def changed(self) -> int:
        """SQLite's `data_version`: it moves when another connection commits, so polling it costs nothing."""
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def migrate(self, legacy: Path, importer: Importer) -> None:
        """Take a JSON file of an earlier version in once, then rename it (under the write lock, so once only)."""
        if not legacy.exists():
            return
        done = legacy.with_name(legacy.name + MIGRATED)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            renamed = False
            try:
                if legacy.exists():  # else another process took it in while this one waited for the lock
                    importer(self._db, orjson.loads(legacy.read_bytes()))
                    legacy.replace(done)
                    renamed = True
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                if renamed:  # nothing was taken in: the file stays for the next open
                    done.replace(legacy)
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()
