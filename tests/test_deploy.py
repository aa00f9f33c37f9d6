"""Deployment files (Dockerfile, docker-compose.yml, mosquitto.conf at the repository root, hence at tests/ root):
docker-compose accepts the compose file, and no secret is in the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.mqtt_fixtures import start_mosquitto
from tests.support.processes import Service, free_port, port_open, require_binary, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    binary = require_binary("docker-compose", "docker-compose")
    return subprocess.run([binary, "--env-file", str(env_file), "-f", str(ROOT / "docker-compose.yml"), *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_compose_file_is_valid_with_the_example_settings() -> None:
    assert compose("config", "-q", env_file=ROOT / ".env.example").returncode == 0
    services = compose("config", "--services", env_file=ROOT / ".env.example").stdout.split()
    assert set(services) == {"mosquitto", "influxdb", "hub", "grafana"}
    resolved = compose("config", env_file=ROOT / ".env.example").stdout
    assert "mosquitto.conf:/mosquitto/config/mosquitto.conf" in resolved.replace(str(ROOT) + "/", "")
    assert "healthcheck" in resolved


def test_compose_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    empty = tmp_path / ".env"
    empty.write_text("")
    result = compose("config", "-q", env_file=empty)
    assert result.returncode != 0 and "in .env" in result.stderr


def test_no_secret_is_committed() -> None:
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=ROOT, check=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    forbidden_files = {".env", "accounts.db", "credentials.json", "users.json", "passwd"}
    assert not [f for f in tracked if Path(f).name in forbidden_files]
    patterns = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|AKIA[0-9A-Z]{16}|xox[bp]-[0-9A-Za-z-]{10,}")
    for name in tracked:
        path = ROOT / name
        if path.suffix in (".png", ".jpg") or not path.is_file():
            continue
        assert not patterns.search(path.read_text(errors="ignore")), name
    example = (ROOT / ".env.example").read_text()
    assert all(v.startswith("change-me") or not v or v in ("admin", "smarthub")
               for v in re.findall(r"^\w+=(.*)$", example, re.M))


def _hub_healthcheck() -> list[str]:
    """The hub's healthcheck command from the resolved compose file."""
    resolved = yaml.safe_load(compose("config", env_file=ROOT / ".env.example").stdout)
    test = resolved["services"]["hub"]["healthcheck"]["test"]
    assert test[0] == "CMD" and "/api/health" in " ".join(test)
    return test[1:]


@pytest.mark.services
def test_the_hub_healthcheck_fails_while_ingest_is_not_receiving(root: str, tmp_path: Path) -> None:
    """The compose healthcheck, run as is against a real `smarthub run`: healthy with the broker, unhealthy
    (503) once the broker is gone past the grace, healthy again when it is back."""
    command = _hub_healthcheck()
    port = free_port()
    command = [sys.executable if command[0] == "python" else command[0],
               *(a.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for a in command[1:])]
    broker = start_mosquitto(tmp_path / "mqtt")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTHUB_")} | {
        "SMARTHUB_MQTT_URL": broker.url(), "SMARTHUB_MQTT_CLIENT_ID": f"deploy-{root}", "SMARTHUB_ROOT": root,
        "SMARTHUB_HTTP": f"127.0.0.1:{port}", "SMARTHUB_DATA_DIR": str(tmp_path / "data"),
        "SMARTHUB_ADMIN_TOKEN": "deploy-token", "SMARTHUB_BROKER_GRACE_S": "1",
    }
    hub = Service([str(Path(sys.executable).with_name("smarthub")), "run"], tmp_path / "hub.log", env=env)

    def healthy() -> bool:
        return subprocess.run(command, capture_output=True, timeout=10).returncode == 0

    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/api/health").json()["broker"], timeout=20,
                   what="the hub to connect")
        assert healthy()
        broker.service.stop()
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 503, timeout=10,
                   what="health 503 without the broker")
        assert not healthy()
        broker.service = Service(broker.service.argv, broker.dir / "mosquitto.log")
        wait_until(lambda: port_open(broker.port), what="mosquitto to listen again")
        wait_until(healthy, timeout=40, what="the healthcheck to pass again")
    finally:
        hub.stop()
        broker.service.stop()
