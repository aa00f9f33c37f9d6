"""`smarthub run` as a user starts it: settings from the environment, a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.mqtt_fixtures import Broker
from tests.support.processes import free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.services]

SMARTHUB = str(Path(sys.executable).with_name("smarthub"))


def test_run_stores_a_message_and_stops_cleanly_on_sigterm(mosquitto: Broker, root: str, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTHUB_")} | {
        "SMARTHUB_MQTT_URL": mosquitto.url(), "SMARTHUB_MQTT_CLIENT_ID": f"cli-{root}", "SMARTHUB_ROOT": root,
        "SMARTHUB_HTTP": f"127.0.0.1:{port}", "SMARTHUB_DATA_DIR": str(tmp_path / "data"),
        "SMARTHUB_ADMIN_TOKEN": "cli-token",
    }
    log = tmp_path / "hub.log"
    with open(log, "wb") as out:
        hub = subprocess.Popen([SMARTHUB, "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{base}/api/health").json()["broker"], timeout=20, what="hub to connect")
        topic = f"{root}/sunshine/elevator/e1/event"
        mosquitto.publish(topic, b'{"type": "fault", "code": "trapped_passenger", "active": true, "id": "t1"}')
        auth = {"Authorization": "Bearer cli-token"}
        wait_until(lambda: httpx.get(f"{base}/api/events", headers=auth).json(), timeout=5, what="event stored")
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(timeout=20) == 0
    finally:
        if hub.poll() is None:
            hub.kill()
    text = log.read_text()
    assert "stopping" in text and "Traceback" not in text, text


def test_bad_settings_fail_with_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTHUB_")} | {
        "SMARTHUB_INFLUX_URL": "http://127.0.0.1:1", "SMARTHUB_MQTT_URL": "tcp://broker"}
    result = subprocess.run([SMARTHUB, "run"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "smarthub: bad setting SMARTHUB_MQTT_URL: must look like mqtt://user:pass@host:1883 or mqtts://host:8883"]
