"""A real InfluxDB (Debian's 1.6 package) for tests, and the `storage` fixture over both backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hub.storage.base import Storage
from hub.storage.embedded import EmbeddedStorage
from hub.storage.influx import InfluxStorage
from tests.support.processes import Service, free_port, require_binary, wait_until

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


@dataclass
class Influxd:
    url: str
    port: int
    dir: Path
    service: Service

    def stop(self) -> None:
        self.service.stop()

    def start(self) -> None:
        """Start again (same port, same data) after `stop()`."""
        self.service = Service(self.service.argv, self.dir / "influxd.log")
        _wait_ready(self)


def _wait_ready(server: Influxd) -> None:
    try:
        wait_until(lambda: httpx.get(f"{server.url}/ping", timeout=1).status_code == 204, timeout=30,
                   what="influxd to answer /ping")
    except TimeoutError:
        server.stop()
        raise RuntimeError(f"influxd did not start:\n{server.service.log()}") from None


def start_influxd(directory: Path) -> Influxd:
    binary = require_binary("influxd", "influxdb")
    directory.mkdir(parents=True, exist_ok=True)
    http_port = free_port()
    conf = directory / "influxdb.conf"
    conf.write_text(CONFIG.format(dir=directory, rpc_port=free_port(), http_port=http_port))
    service = Service([binary, "-config", str(conf)], directory / "influxd.log")
    server = Influxd(f"http://127.0.0.1:{http_port}", http_port, directory, service)
    _wait_ready(server)
    return server


@pytest.fixture(scope="session")
def influxd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    server = start_influxd(tmp_path_factory.mktemp("influxdb"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influxd(influxd_server: Influxd) -> str:
    """Base URL of the session's real InfluxDB; tests isolate themselves by database name."""
    return influxd_server.url


@pytest.fixture(params=["influx", "embedded"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    """A started store of each backend, fresh for each test (new database or new file)."""
    if request.param == "influx":
        url = request.getfixturevalue("influxd")
        store: Storage = InfluxStorage(url, db=f"t_{uuid.uuid4().hex[:12]}")
    else:
        store = EmbeddedStorage(tmp_path / "store.db")
    await store.start()
    yield store
    await store.close()
