import hashlib
import os
import stat
from pathlib import Path

import orjson
import pytest

from hub.accounts import MIGRATIONS
from hub.credentials import Credentials, VerifiedLogins, broker_files, digest_ha1, mosquitto_hash
from hub.statedb import open_state

pytestmark = pytest.mark.unit


def test_hash_has_mosquittos_format_and_depends_on_salt() -> None:
    h = mosquitto_hash("secret", b"0123456789ab")
    assert h.startswith("$7$101$MDEyMzQ1Njc4OWFi$") and len(h.split("$")[-1]) == 88  # 64 bytes, base64
    assert mosquitto_hash("secret") != mosquitto_hash("secret")


def test_passwords_are_shown_once_and_only_hashes_kept(tmp_path: Path) -> None:
    creds = Credentials(tmp_path)
    password = creds.add("sunshine", "access", "b3-door1")
    store = tmp_path / "accounts.db"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    creds.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("accounts.db*"))  # the file and its WAL
    assert password.encode() not in raw and b"$7$101$" in raw
    again = Credentials(tmp_path).add("sunshine", "access", "b3-door1")  # a new password replaces the old account
    assert again != password and len(Credentials(tmp_path).devices) == 1


def test_a_credentials_json_of_an_earlier_version_is_taken_in_once(tmp_path: Path) -> None:
    legacy = {"devices": [{"site": "sunshine", "kind": "gate", "device": "east-1", "hash": mosquitto_hash("pw")}]}
    (tmp_path / "credentials.json").write_bytes(orjson.dumps(legacy))
    assert [d.username for d in Credentials(tmp_path).devices] == ["sunshine.gate.east-1"]
    assert not (tmp_path / "credentials.json").exists() and (tmp_path / "credentials.json.migrated").exists()
    Credentials(tmp_path).add("sunshine", "gate", "west-2")
    assert len(Credentials(tmp_path).devices) == 2


def test_accounts_added_by_another_process_are_seen_at_the_next_read(tmp_path: Path) -> None:
    hub_view = Credentials(tmp_path)
    before = hub_view.db.changed()
    Credentials(tmp_path).add("sunshine", "gate", "east-1")  # its own connection, as `smarthub device add` has
    assert hub_view.db.changed() != before
    assert [d.device for d in hub_view.devices] == ["east-1"]


def test_broker_files_need_the_hubs_credentials(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="user:password"):
        broker_files([], "community", "mqtt://127.0.0.1:1883")
    passwd, acl = broker_files([], "c", "mqtt://hub:pw@broker:1883")
    assert passwd.startswith("hub:$7$") and "topic read c/#" in acl


def test_the_frigate_adapter_gets_a_broker_account_that_only_publishes_under_its_prefix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `smarthub broker-files` writes for Frigate: its own login, a hash only, and one ACL rule, write
    `frigate/#` (Frigate's `topic_prefix`); no read at all, not the contract's root, not its own topics."""
    from hub.adapters import broker_accounts, load

    monkeypatch.delenv("SMARTHUB_FRIGATE_TOPIC_PREFIX", raising=False)
    writers = broker_accounts(load(["adapters.ocpp", "adapters.hikvision", "adapters.frigate"]))
    assert writers == {"frigate": ["frigate/#"]}  # the other adapters' devices have device accounts
    monkeypatch.setenv("SMARTHUB_FRIGATE_TOPIC_PREFIX", "nvr1")
    assert broker_accounts(load(["adapters.frigate"])) == {"frigate": ["nvr1/#"]}

    creds = Credentials(tmp_path)
    password = creds.add_vendor("frigate")
    creds.add("sunshine", "gate", "east-1")
    vendors = {login: (hashed, writers[login]) for login, hashed in creds.vendors.items()}
    passwd, acl = broker_files(creds.devices, "community", "mqtt://hub:pw@broker:1883", (), vendors)
    assert [line.split(":")[0] for line in passwd.splitlines()] == ["hub", "frigate", "sunshine.gate.east-1"]
    assert password not in passwd and verify_line(passwd, "frigate", password)
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in acl.split("\n\n") if b.startswith("user ")}
    assert blocks["user frigate"] == ["topic write frigate/#"]
    assert creds.add_vendor("frigate") != password and len(creds.vendors) == 1  # a new password replaces it
    with pytest.raises(ValueError, match="also a vendor"):
        broker_files([], "community", "mqtt://frigate:pw@broker:1883", (), vendors)


def verify_line(passwd: str, login: str, password: str) -> bool:
    from hub.credentials import verify

    return any(verify(password, line.split(":", 1)[1]) for line in passwd.splitlines() if line.startswith(f"{login}:"))


def test_broker_files_refused_for_the_hubs_url_makes_no_vendor_account(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A password made and never printed would be lost (the next run keeps the account): refuse first."""
    from hub.cli import main

    for name in [n for n in os.environ if n.startswith("SMARTHUB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SMARTHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SMARTHUB_MQTT_URL", "mqtt://127.0.0.1:1883")
    assert main(["broker-files", str(tmp_path / "mosquitto")]) == 2
    assert "user:password" in capsys.readouterr().err
    assert Credentials(tmp_path / "data").vendors == {} and not (tmp_path / "mosquitto").exists()
    monkeypatch.setenv("SMARTHUB_MQTT_URL", "mqtt://frigate:pw@127.0.0.1:1883")
    assert main(["broker-files", str(tmp_path / "mosquitto")]) == 2
    assert "also a vendor" in capsys.readouterr().err and Credentials(tmp_path / "data").vendors == {}
    monkeypatch.setenv("SMARTHUB_MQTT_URL", "mqtt://hub:pw@127.0.0.1:1883")
    assert main(["broker-files", str(tmp_path / "mosquitto")]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert set(Credentials(tmp_path / "data").vendors) == {"frigate"} and printed["vendors"]["frigate"]["password"]


class CountingChecks(Credentials):
    """The real store, counting the full checks (a store read and a PBKDF2 hash each)."""

    checks = 0

    def check(self, site: str, kind: str, device: str, password: str) -> bool:
        self.checks += 1
        return super().check(site, kind, device, password)


def test_a_verified_login_is_not_hashed_again(tmp_path: Path) -> None:
    creds = CountingChecks(tmp_path)
    password = creds.add("sunshine", "gate", "lpr-1")
    assert creds.opens("sunshine", "lpr-1", password, ("gate", "access")) == ["gate"]
    full = creds.checks
    for _ in range(5):
        assert creds.opens("sunshine", "lpr-1", password, ("gate", "access")) == ["gate"]
    assert creds.checks == full
    assert creds.opens("sunshine", "lpr-1", "wrong", ("gate", "access")) == []  # never taken from the cache
    assert creds.opens("sunshine", "lpr-2", password, ("gate", "access")) == []  # nor for another device
    assert creds.opens("sunshine", "lpr-1", password, ("gate", "access")) == ["gate"]  # still there


def test_a_rotated_password_stops_the_old_one_at_once(tmp_path: Path) -> None:
    creds = Credentials(tmp_path)
    old = creds.add("sunshine", "gate", "lpr-1")
    assert creds.opens("sunshine", "lpr-1", old, ("gate",)) == ["gate"]
    new = creds.add("sunshine", "gate", "lpr-1")  # this process
    assert creds.opens("sunshine", "lpr-1", old, ("gate",)) == []
    assert creds.opens("sunshine", "lpr-1", new, ("gate",)) == ["gate"]
    newer = Credentials(tmp_path).add("sunshine", "gate", "lpr-1")  # another process (its own connection)
    assert creds.opens("sunshine", "lpr-1", new, ("gate",)) == []
    assert creds.opens("sunshine", "lpr-1", newer, ("gate",)) == ["gate"]


def test_verified_logins_expire_and_keep_no_password() -> None:
    now = [1000.0]
    logins = VerifiedLogins(ttl_s=60, kept=2, clock=lambda: now[0])
    logins.put(("s", "d1"), "pw-secret-1", 7, ("gate",))
    assert logins.get(("s", "d1"), "pw-secret-1", 7) == ("gate",)
    assert logins.get(("s", "d1"), "pw-secret-1", 8) is None  # an account changed: forgotten
    logins.put(("s", "d1"), "pw-secret-1", 7, ("gate",))
    now[0] += 60
    assert logins.get(("s", "d1"), "pw-secret-1", 7) is None  # expired
    for d in ("d1", "d2", "d3"):
        logins.put(("s", d), "pw-secret-1", 7, ("gate",))
    assert logins.get(("s", "d1"), "pw-secret-1", 7) is None and logins.get(("s", "d3"), "pw-secret-1", 7)
    kept = repr(logins.__dict__).encode() + b"".join(e[0] for e in logins._entries.values())
    assert b"pw-secret-1" not in kept


def test_the_digest_key_is_kept_beside_the_hash_and_never_the_password(tmp_path: Path) -> None:
    creds = Credentials(tmp_path)
    password = creds.add("sunshine", "gate", "lpr-1")
    assert creds.digest_keys("sunshine", "lpr-1", ("gate", "access")) == {"gate": digest_ha1("lpr-1", password)}
    assert digest_ha1("lpr-1", password) == hashlib.md5(f"lpr-1:smarthub:{password}".encode()).hexdigest()
    assert creds.digest_keys("sunshine", "lpr-1", ("access",)) == {}
    rotated = creds.add("sunshine", "gate", "lpr-1")
    assert creds.digest_keys("sunshine", "lpr-1", ("gate",)) == {"gate": digest_ha1("lpr-1", rotated)}
    creds.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("accounts.db*"))
    assert rotated.encode() not in raw and digest_ha1("lpr-1", rotated).encode() in raw


def test_accounts_of_a_version_before_digest_keys_have_none_and_basic_still_opens(tmp_path: Path) -> None:
    old = open_state(None, tmp_path / "accounts.db")
    old.migrate("accounts", MIGRATIONS[:3])  # the schema before `devices.ha1`
    old.transact(lambda tx: tx.execute("INSERT INTO devices (site, kind, device, hash) VALUES (?, ?, ?, ?)",
                                       ("sunshine", "gate", "lpr-1", mosquitto_hash("old-password"))))
    old.close()
    creds = Credentials(tmp_path)
    assert creds.digest_keys("sunshine", "lpr-1", ("gate",)) == {"gate": None}
    assert creds.opens("sunshine", "lpr-1", "old-password", ("gate",)) == ["gate"]
    new = creds.add("sunshine", "gate", "lpr-1")  # `smarthub device add` again
    assert creds.digest_keys("sunshine", "lpr-1", ("gate",)) == {"gate": digest_ha1("lpr-1", new)}
