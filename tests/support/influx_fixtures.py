"""A real InfluxDB (Debian's 1.6 package) for tests, and the `storage` fixture over both backends.

influxd runs as the current user first. Only if that fails while we are root
does it retry as `nobody` through `setpriv`, the recipe of STACK-NOTES
section 5, in a directory of its own (nobody cannot enter pytest's tmp dirs).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hub.storage.base import Storage
from hub.storage.embedded import EmbeddedStorage
from hub.storage.influx import InfluxStorage
from tests.support.processes import Service, free_port, free_service_port, require_binary, wait_until

CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{dir}/meta"
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
[monitor]
  store-enabled = false
[logging]
  level = "warn"
"""
START_TIMEOUT_S = 30.0
EMBEDDED_RETENTION_DAYS = 36_500
"""The suite's embedded store keeps everything, like InfluxDB's default policy; retention has its own test."""


@dataclass
class Influxd:
    url: str
    port: int
    dir: Path
    service: Service
    remove_dir: bool = False
    """True when the directory is one we made (the run-as-nobody fallback): removed by `close()`."""

    def stop(self) -> None:
        self.service.stop()

    def kill(self) -> None:
        """SIGKILL: what a crash or an OOM kill does (its WAL brings back what it acknowledged)."""
        self.service.kill()

    def pause(self) -> None:
        """SIGSTOP: a hung database; connections open, nothing answers."""
        self.service.signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause()`."""
        self.service.signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop for good, removing a directory of our own making."""
        self.stop()
        if self.remove_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def start(self) -> None:
        """Start again (same port, same data) after `stop()`."""
        self.service = Service(self.service.argv, self.dir / "influxd.log")
        _wait_ready(self)


def _answers(server: Influxd) -> bool:
    return httpx.get(f"{server.url}/ping", timeout=1).status_code == 204


def _wait_ready(server: Influxd) -> None:
    """Until /ping answers; fails at once if influxd exits (wait_until would keep polling a dead process)."""
    try:
        wait_until(lambda: not server.service.alive() or _answers(server), timeout=START_TIMEOUT_S,
                   what="influxd to answer /ping")
        if not server.service.alive():
            raise TimeoutError
    except TimeoutError:
        server.stop()
        argv = " ".join(server.service.argv)
        raise RuntimeError(f"influxd did not start ({argv}):\n{server.service.log()}") from None


def start_influxd(directory: Path) -> Influxd:
    """influxd on free loopback ports (HTTP and RPC), its data and log under `directory`."""
    binary = require_binary("influxd", "influxdb")
    try:
        return _start(binary, directory, [])
    except RuntimeError:
        setpriv = shutil.which("setpriv")
        if os.geteuid() != 0 or setpriv is None:
            raise
    # As nobody, in a directory of its own under the system temp dir: pytest's tmp dirs are 0700 root.
    own = Path(tempfile.mkdtemp(prefix="smarthub-influxd-"))
    shutil.chown(own, "nobody", "nogroup")
    server = _start(binary, own, [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"], owner="nobody")
    server.remove_dir = True
    return server


def _start(binary: str, directory: Path, prefix: list[str], owner: str | None = None) -> Influxd:
    directory.mkdir(parents=True, exist_ok=True)
    http_port = free_service_port()  # restarted on the same port by the fault tests
    conf = directory / "influxdb.conf"
    conf.write_text(CONFIG.format(dir=directory, rpc_port=free_port(), http_port=http_port))
    if owner:
        shutil.chown(conf, owner)
    argv = [*prefix, binary, "-config", str(conf)]
    server = Influxd(f"http://127.0.0.1:{http_port}", http_port, directory, Service(argv, directory / "influxd.log"))
    _wait_ready(server)
    return server


@pytest.fixture(scope="session")
def influxd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    server = start_influxd(tmp_path_factory.mktemp("influxdb"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def influxd(influxd_server: Influxd) -> str:
    """Base URL of the session's real InfluxDB; tests isolate themselves by database name."""
    return influxd_server.url


@pytest.fixture(params=["influx", "embedded"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    """A started store of each backend, fresh for each test (new database or new file), closed after."""
    if request.param == "influx":
        url = request.getfixturevalue("influxd")
        db = f"t_{uuid.uuid4().hex[:12]}"
        store: Storage = InfluxStorage(url, db=db, timeout_s=5)
    else:
        store = EmbeddedStorage(tmp_path / "store.db", retention_days=EMBEDDED_RETENTION_DAYS)
    await store.start()
    try:
        yield store
    finally:
        await store.close()
        if request.param == "influx":  # keep the session server small
            async with httpx.AsyncClient() as client:
                await client.post(f"{url}/query", params={"q": f'DROP DATABASE "{db}"'})
