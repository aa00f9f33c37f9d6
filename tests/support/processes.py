"""Helpers to run real services (Mosquitto, InfluxDB) for tests on free loopback ports."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str, package: str) -> str:
    """Path of a service binary; skip the test when it is missing, fail under CI=true."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path:
        return path
    message = f"{name} not found: install Debian's {package} package (bash .ci/run does)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVICE_PORTS = range(20_000, 32_000)
"""Below Linux's ephemeral range (32768-60999): a client retrying a connect to a port in that range while
nothing listens there can be given that very port as its own and connect to itself (TCP self-connect),
and the restarted service then finds its port taken ("Address already in use")."""


def free_service_port() -> int:
    """A port free on loopback now, for a service that is stopped and started again on it."""
    for _ in range(200):
        port = random.choice(SERVICE_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def wait_until(
    check: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll `check` until it is true; raise with `what` in the message after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - the service may still be starting
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Service:
    """A started process with its log file; `stop()` terminates it and waits."""

    def __init__(self, argv: list[str], log_path: Path, **popen_kwargs: object) -> None:
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, **popen_kwargs)  # type: ignore[call-overload]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` (SIGSTOP/SIGCONT to freeze and thaw it, for fault tests)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no chance to save or flush anything."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process dies only once it runs again
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # SIGTERM stays pending on a SIGSTOPped process
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
