"""The hub as a real `smarthub run` subprocess, for fault tests and benches.

Unlike `hub_fixtures.running_hub` (the hub in the test's own event loop), this
one can be SIGKILLed like a crashed container and started again on the same
data dir and MQTT client id, so the broker's persistent session and the
outbox on disk are all that carry over.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.support.mqtt_fixtures import Broker
from tests.support.processes import Service, free_port, wait_until

TOKEN = "fault-admin-token"
START_TIMEOUT_S = 30.0


def metric(text: str, name: str) -> float:
    """Sum of all samples of a metric family in Prometheus text (0 when absent)."""
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def broker_grace_env(seconds: float) -> dict[str, str]:
    """`SMARTHUB_BROKER_GRACE_S`: how long the broker may be away before /api/health says 503."""
    return {"SMARTHUB_BROKER_GRACE_S": f"{seconds:g}"}


def smarthub_argv() -> list[str]:
    script = Path(sys.executable).with_name("smarthub")
    return [str(script), "run"] if script.exists() else [sys.executable, "-m", "hub.cli", "run"]


class HubProcess:
    """`smarthub run` on a free HTTP port, its data dir and log under `directory`."""

    def __init__(self, broker: Broker, influx_url: str | None, root: str, directory: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SMARTHUB_MQTT_URL": broker.url(),
            "SMARTHUB_MQTT_CLIENT_ID": f"hub-{root}",
            "SMARTHUB_ROOT": root,
            "SMARTHUB_HTTP": f"127.0.0.1:{self.port}",
            "SMARTHUB_DATA_DIR": str(directory / "data"),
            "SMARTHUB_ADMIN_TOKEN": TOKEN,
            "SMARTHUB_LOG_LEVEL": "info",
            **({"SMARTHUB_INFLUX_URL": influx_url, "SMARTHUB_INFLUX_DB": f"db_{root}"} if influx_url else {}),
            **(env or {}),
        }
        self.db = self.env.get("SMARTHUB_INFLUX_DB", "smarthub")
        self.service: Service | None = None
        self.starts = 0
        self._http = httpx.Client(timeout=2)

    @property
    def pid(self) -> int:
        assert self.service is not None
        return self.service.proc.pid

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start and wait until the API answers and the hub is connected to the broker."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.service = Service(smarthub_argv(), self.directory / "hub.log", env=self.env)
        self.starts += 1
        try:
            wait_until(lambda: not self.alive() or self.mqtt_connected(), timeout=timeout, interval=0.05,
                       what="the hub to answer and connect to MQTT")
        except TimeoutError:
            raise RuntimeError(f"hub did not come up:\n{self.log()}") from None
        if not self.alive():
            raise RuntimeError(f"hub exited with {self.service.proc.returncode}:\n{self.log()}")

    def alive(self) -> bool:
        return self.service is not None and self.service.alive()

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye; what is not in the outbox (or still unacknowledged) is the test."""
        assert self.service is not None
        self.service.kill()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.service is not None
        proc = self.service.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except Exception:  # noqa: BLE001 - a hub that does not stop is killed, and the code says so
                proc.kill()
                proc.wait()
        self.service.stop()
        return int(proc.returncode)

    def close(self) -> None:
        if self.service is not None and self.service.alive():
            self.kill()
        self._http.close()

    def log(self) -> str:
        return (self.directory / "hub.log").read_text(errors="replace")[-6000:]

    def metrics_text(self) -> str:
        return self._http.get(f"{self.api}/metrics").raise_for_status().text

    def metric(self, name: str) -> float:
        return metric(self.metrics_text(), name)

    def mqtt_connected(self) -> bool:
        return self.metric("smarthub_mqtt_connected") == 1

    def health(self) -> int:
        """HTTP status of /api/health; 0 when it did not answer within 2 s."""
        try:
            return self._http.get(f"{self.api}/api/health").status_code
        except httpx.HTTPError:
            return 0

    def backlog(self) -> float:
        """Messages and points the hub holds that are not yet in the store."""
        text = self.metrics_text()
        return sum(metric(text, n) for n in ("smarthub_outbox_points", "smarthub_pending_points",
                                              "smarthub_mqtt_inbox_messages"))

    def drained(self, timeout: float = 60.0) -> None:
        """Until everything the hub received is in the store (a few quiet polls in a row)."""
        quiet = 0
        deadline = time.monotonic() + timeout
        while quiet < 3:
            if time.monotonic() > deadline:
                raise TimeoutError(f"hub did not drain within {timeout}s (backlog {self.backlog():.0f})")
            quiet = quiet + 1 if self.backlog() == 0 else 0
            time.sleep(0.2)
