"""A real PostgreSQL (Debian's 15) for tests, and the `state_url` fixture over both state backends.

A throwaway cluster: `initdb` into a temp dir, `postgres` in the foreground on a free loopback port
(listening on 127.0.0.1 only, its socket in the same dir), trust auth (loopback is all it listens on),
removed after the session. PostgreSQL refuses to run as root, so when we are root it runs as the
`postgres` user (STACK-NOTES section 9) in a directory of its own: pytest's tmp dirs are 0700 root. It is
started as that user directly (Popen's user/group), not through runuser, so our signals reach the
postmaster itself: runuser answers SIGTERM by killing its child, which leaves the cluster's lock behind.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import Service, free_service_port, require_binary, wait_until

USER = "smarthub"
"""The cluster's superuser (initdb -U), the one the hub connects as."""
START_TIMEOUT_S = 30.0
SETTINGS = ("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "log_min_messages=warning")
"""fsync off: a test cluster that a machine crash may lose is fine, and it is several times faster."""


@dataclass
class Postgres:
    port: int
    dir: Path
    argv: list[str]
    service: Service
    as_user: dict[str, Any]
    """Popen's user/group when we are root, else empty."""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """SIGTERM-like smart shutdown would wait for clients: fast shutdown (SIGINT) ends their sessions."""
        if self.service.alive():
            self.service.signal(signal.SIGINT)
        self.service.stop()

    def kill(self) -> None:
        """SIGKILL of the postmaster, as a crash (its WAL brings back what it committed)."""
        self.service.kill()

    def start(self) -> None:
        """Start again (same port, same data) after `stop()` or `kill()`."""
        self.service = Service(self.argv, self.dir / "postgres.log", **self.as_user)
        _wait_ready(self)

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        _psql(self, f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        _psql(self, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _bin(name: str) -> str:
    """A PostgreSQL 15 program: on PATH, or where Debian puts it."""
    own = Path("/usr/lib/postgresql/15/bin") / name
    return str(own) if own.exists() else require_binary(name, "postgresql")


def _psql(server: Postgres, sql: str) -> None:
    import psycopg

    with psycopg.connect(server.url(), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def _answers(server: Postgres) -> bool:
    import psycopg

    with psycopg.connect(server.url(), connect_timeout=1) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def _wait_ready(server: Postgres) -> None:
    try:
        wait_until(lambda: not server.service.alive() or _answers(server), timeout=START_TIMEOUT_S,
                   what="postgres to accept connections")
        if not server.service.alive():
            raise TimeoutError
    except TimeoutError:
        server.service.stop()
        raise RuntimeError(f"postgres did not start ({' '.join(server.argv)}):\n{server.service.log()}") from None


def start_postgres() -> Postgres:
    """A fresh cluster on a free loopback port (restartable on the same port), in a temp dir of its own."""
    require_binary("initdb", "postgresql")
    directory = Path(tempfile.mkdtemp(prefix="smarthub-pg-"))
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(directory, owner.pw_uid, owner.pw_gid)
        as_user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": [], "cwd": str(directory)}
    data = directory / "data"
    init = subprocess.run([_bin("initdb"), "-D", str(data), "-A", "trust", "-U", USER, "-E", "UTF8",
                           "--locale=C.UTF-8", "--no-sync"], capture_output=True, text=True, check=False, **as_user)
    if init.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
    port = free_service_port()  # restarted on the same port by the outage tests
    argv = [_bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(directory), *SETTINGS]
    log = directory / "postgres.log"
    server = Postgres(port, directory, argv, Service(argv, log, **as_user), as_user)
    _wait_ready(server)
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    server = start_postgres()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: Postgres) -> Iterator[str]:
    """A fresh database of the session's cluster for one test, dropped after."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    yield url
    if postgres_server.service.alive():
        postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest) -> str | None:
    """Each state backend in turn: None (SQLite files in the data dir, the default) or a fresh PostgreSQL
    database's URL (`SMARTHUB_DATABASE_URL`). The same store tests run on both."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))
