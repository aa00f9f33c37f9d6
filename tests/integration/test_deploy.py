"""Deployment files: docker-compose accepts the compose file, and no secret is in the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import require_binary

ROOT = Path(__file__).resolve().parents[2]


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
    forbidden_files = {".env", "credentials.json", "users.json", "passwd"}
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
