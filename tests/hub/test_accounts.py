"""Users and devices added from the CLI while `smarthub run` runs: real processes on one data dir.

Before the shared accounts store, a user added this way could not log in until a restart, and the
hub's next `POST /api/users` rewrote users.json from memory, deleting them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from hub.users import token_hash
from tests.support.hub_process import TOKEN, HubProcess
from tests.support.mqtt_fixtures import Broker
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.services]

SMARTHUB = str(Path(sys.executable).with_name("smarthub"))
CONCURRENT = 6


@pytest.fixture
def hub(mosquitto: Broker, root: str, tmp_path: Path) -> Iterator[HubProcess]:
    data = tmp_path / "hub" / "data"
    data.mkdir(parents=True)  # an upgrade: users.json of an earlier version is in the data dir
    (data / "users.json").write_bytes(orjson.dumps(
        {"users": [{"name": "old-timer", "role": "viewer", "token_hash": token_hash("old-token")}]}))
    process = HubProcess(mosquitto, None, root, tmp_path / "hub")
    process.start()
    yield process
    process.stop()
    process.close()


def cli(hub: HubProcess, *args: str) -> subprocess.Popen[str]:
    """`smarthub ...` as an operator runs it beside the hub: same settings, its own process."""
    return subprocess.Popen([SMARTHUB, *args], env=hub.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def output(proc: subprocess.Popen[str]) -> dict:  # type: ignore[type-arg]
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def status(hub: HubProcess, token: str, path: str = "/api/alerts") -> int:
    return httpx.get(f"{hub.api}{path}", headers={"Authorization": f"Bearer {token}"}).status_code


def test_cli_users_work_at_once_and_survive_the_api_adding_users(hub: HubProcess) -> None:
    assert status(hub, "old-token") == 200  # taken over from users.json at the start
    alice = output(cli(hub, "user", "add", "alice", "--role", "viewer"))["token"]
    assert status(hub, alice) == 200 and status(hub, alice, "/api/audit") == 403  # no restart, no wait

    made = httpx.post(f"{hub.api}/api/users", headers={"Authorization": f"Bearer {TOKEN}"},
                      json={"name": "bob", "role": "operator"})
    assert made.status_code == 200, made.text
    assert status(hub, alice) == 200 and status(hub, made.json()["token"]) == 200  # both still there

    tokens = [output(p)["token"] for p in [cli(hub, "user", "add", f"c{i}", "--role", "viewer")
                                           for i in range(CONCURRENT)]]  # all started before any is read
    assert [status(hub, t) for t in tokens] == [200] * CONCURRENT
    names = {u["name"] for u in output(cli(hub, "user", "list"))}
    assert names == {"old-timer", "alice", "bob", *(f"c{i}" for i in range(CONCURRENT))}

    admin = output(cli(hub, "user", "add", "alice", "--role", "admin"))["token"]  # a role change: a new token
    assert status(hub, alice) == 401 and status(hub, admin, "/api/audit") == 200
    output(cli(hub, "user", "remove", "alice"))
    assert status(hub, admin) == 401  # removed: refused at the next request


def test_a_device_added_while_the_hub_runs_is_registered_and_in_the_broker_files(
    hub: HubProcess, tmp_path: Path
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def registered() -> list[tuple[str, bool]]:
        return [(d["device"], d["registered"]) for d in httpx.get(f"{hub.api}/api/devices", headers=auth).json()]

    added = [cli(hub, "device", "add", "sunshine", "gate", f"g{i}") for i in range(CONCURRENT)]
    passwords = [output(p)["password"] for p in added]
    wait_until(lambda: len(registered()) == CONCURRENT, timeout=10, what="the running hub to register the devices")
    assert sorted(registered()) == [(f"g{i}", True) for i in range(CONCURRENT)]
    files = output(cli(hub, "broker-files", str(tmp_path / "mosquitto")))
    passwd = (tmp_path / "mosquitto" / "passwd").read_text()
    # the hub, Frigate's account (the Frigate adapter is on by default: its password shown this once), the devices
    assert files["accounts"] == CONCURRENT + 2 and all(f"sunshine.gate.g{i}:$7$" in passwd for i in range(CONCURRENT))
    assert not any(p in passwd for p in passwords)
    frigate = files["vendors"]["frigate"]
    assert frigate["writes"] == ["frigate/#"] and frigate["password"] not in passwd and "\nfrigate:$7$" in passwd
    again = output(cli(hub, "broker-files", str(tmp_path / "mosquitto")))
    assert again["vendors"] == {"frigate": {"writes": ["frigate/#"]}}  # kept: no new password, none shown
    assert (tmp_path / "mosquitto" / "passwd").read_text().split("\nfrigate:")[1].split("\n")[0] == \
        passwd.split("\nfrigate:")[1].split("\n")[0]
    renewed = output(cli(hub, "broker-files", str(tmp_path / "mosquitto"), "--new-password", "frigate"))
    assert renewed["vendors"]["frigate"]["password"] != frigate["password"]
    refused = cli(hub, "broker-files", str(tmp_path / "mosquitto"), "--new-password", "nobody")
    assert refused.wait(60) == 2 and "no adapter needs a broker account nobody" in refused.communicate()[1]
