"""Two `smarthub run` copies on one PostgreSQL (SMARTHUB_DATABASE_URL) and one Mosquitto, real processes.

Both copies subscribe to everything (no share group), so both hear the same fault: the alert opens once,
either copy's API works it, and a user the CLI adds beside one copy logs in on the other."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.hub_process import TOKEN, HubProcess
from tests.support.mqtt_fixtures import Broker, read_retained
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.services]

SMARTHUB = str(Path(sys.executable).with_name("smarthub"))
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def copies(mosquitto: Broker, root: str, tmp_path: Path, postgres_url: str) -> Iterator[list[HubProcess]]:
    hubs = [HubProcess(mosquitto, None, root, tmp_path / f"copy{n}",
                       env={"SMARTHUB_DATABASE_URL": postgres_url, "SMARTHUB_MQTT_CLIENT_ID": f"hub-{root}-{n}"})
            for n in range(2)]
    for hub in hubs:
        hub.start()
    yield hubs
    for hub in hubs:
        hub.stop()
        hub.close()


def alerts(hub: HubProcess) -> list[dict]:  # type: ignore[type-arg]
    return httpx.get(f"{hub.api}/api/alerts", headers=AUTH).raise_for_status().json()  # type: ignore[no-any-return]


def test_two_copies_share_users_and_open_one_alert(copies: list[HubProcess], mosquitto: Broker, root: str,
                                                   postgres_url: str) -> None:
    a, b = copies
    added = subprocess.run([SMARTHUB, "user", "add", "王师傅", "--role", "maintenance"], env=a.env,
                           capture_output=True, text=True, timeout=60, check=True)
    token = json.loads(added.stdout)["token"]
    assert httpx.get(f"{b.api}/api/alerts", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    topic = f"{root}/sunshine/elevator/e1/event"
    mosquitto.publish(topic, b'{"type": "fault", "code": "trapped_passenger", "active": true, "id": "f1"}')
    wait_until(lambda: all(h.metric("smarthub_messages_accepted_total") >= 1 for h in copies), timeout=10,
               what="both copies to take the fault in")
    [opened] = alerts(a)
    assert alerts(b) == [opened] and opened["state"] == "open"
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (1,)
    retained = read_retained(mosquitto, f"{root}/+/alerts/#", wait_s=1.0)
    assert list(retained) == [f"{root}/sunshine/alerts/{opened['id']}"]  # announced once: no second copy's alert

    acked = httpx.post(f"{b.api}/api/alerts/{opened['id']}/ack", json={"note": "到场"},
                       headers={"Authorization": f"Bearer {token}"})
    assert acked.status_code == 200, acked.text  # the copy that lost the race works the stored alert
    assert [x["state"] for x in alerts(a)] == ["acknowledged"]
    audit = httpx.get(f"{a.api}/api/audit", headers=AUTH).raise_for_status().json()
    assert {(e["user"], e["action"]) for e in audit} >= {("cli", "user.add"), ("王师傅", "alert.ack")}
    for hub in copies:
        assert "Traceback" not in hub.log(), hub.log()
