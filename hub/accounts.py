"""The one store of API users and device accounts: `accounts.db` (SQLite, WAL) in the data directory, or
the shared PostgreSQL database when `SMARTHUB_DATABASE_URL` is set (`hub.statedb`).

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
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import orjson

from hub.statedb import Row, Tx, open_state

FILE = "accounts.db"
BUSY_TIMEOUT_MS = 10_000
"""How long a writer waits for another process's transaction: each lasts microseconds, so this is only a bound."""
MIGRATED = ".migrated"

MIGRATIONS = (
    """
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
""",
    """
CREATE TABLE IF NOT EXISTS accounts_version (id INTEGER PRIMARY KEY, n {int} NOT NULL);
INSERT INTO accounts_version (id, n) VALUES (1, 0) ON CONFLICT DO NOTHING;
""",
    """
CREATE TABLE IF NOT EXISTS vendors (
    login TEXT PRIMARY KEY,
    hash TEXT NOT NULL
);
""",
    """
ALTER TABLE devices ADD COLUMN ha1 TEXT;
""",
)
"""Schema steps (`hub.statedb`): the first is the schema of the SQLite-only versions, so their files take it
as they are; `accounts_version` counts changes, which is how every process (on either database) sees
another's; `vendors` keeps the broker accounts of vendor systems (Frigate's); `devices.ha1` is the HTTP Digest key
of an account (`hub.credentials.digest_ha1`), NULL for the accounts made before it (Basic only)."""
BUMP = "UPDATE accounts_version SET n = n + 1 WHERE id = 1"

T = TypeVar("T")
Importer = Callable[[Tx, dict], None]  # type: ignore[type-arg]
"""Inserts the rows of one legacy JSON file, inside the open transaction."""


def _create_private(path: Path) -> None:
    """Token and password hashes: the file (and so its -wal and -shm) is the owner's alone from the start.

    O_EXCL matters: closing any descriptor of a file drops every POSIX lock this process holds on it,
    SQLite's included, so an open file is never opened and closed here (only one that did not exist)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


class AccountsDb:
    """The accounts tables, in `accounts.db` or in PostgreSQL (`database_url`); shared by the process's threads."""

    def __init__(self, data_dir: Path, database_url: str | None = None) -> None:
        self.path = data_dir / FILE
        data_dir.mkdir(parents=True, exist_ok=True)
        if not database_url:
            _create_private(self.path)
        self.state = open_state(database_url, self.path, BUSY_TIMEOUT_MS)
        self.state.migrate("accounts", MIGRATIONS)

    def read(self, sql: str, args: tuple[object, ...] = ()) -> list[Row]:
        return self.state.query(sql, args)

    def write(self, work: Callable[[Tx], T]) -> T:
        """`work` in one write transaction that also counts the change (`changed`); run again whole if the
        connection to PostgreSQL was lost (SQLite: BEGIN IMMEDIATE, so no other writer slips in between)."""
        def counted(tx: Tx) -> T:
            result = work(tx)
            tx.execute(BUMP)
            return result

        return self.state.transact(counted)

    def changed(self) -> int:
        """A number that moves whenever any process changes the accounts: polling it is one indexed read."""
        row = self.state.one("SELECT n FROM accounts_version WHERE id = 1")
        return int(row[0]) if row else 0

    def migrate(self, legacy: Path, importer: Importer) -> None:
        """Take a JSON file of an earlier version in, then rename it. The import inserts only what is missing,
        so two processes that both find the file before either renamed it take it in once between them."""
        if not legacy.exists():
            return
        def take(tx: Tx) -> None:
            try:
                raw = legacy.read_bytes()
            except FileNotFoundError:  # another process took it in while this one waited for the lock
                return
            importer(tx, orjson.loads(raw))

        self.write(take)
        with contextlib.suppress(FileNotFoundError):  # the other process renamed it first
            legacy.replace(legacy.with_name(legacy.name + MIGRATED))

    def close(self) -> None:
        self.state.close()
