import stat
from pathlib import Path

import pytest

from hub.credentials import Credentials, broker_files, mosquitto_hash


def test_hash_has_mosquittos_format_and_depends_on_salt() -> None:
    h = mosquitto_hash("secret", b"0123456789ab")
    assert h.startswith("$7$101$MDEyMzQ1Njc4OWFi$") and len(h.split("$")[-1]) == 88  # 64 bytes, base64
    assert mosquitto_hash("secret") != mosquitto_hash("secret")


def test_passwords_are_shown_once_and_only_hashes_kept(tmp_path: Path) -> None:
    creds = Credentials(tmp_path / "credentials.json")
    password = creds.add("sunshine", "access", "b3-door1")
    text = (tmp_path / "credentials.json").read_text()
    assert password not in text and "$7$101$" in text
    assert stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode) == 0o600
    again = creds.add("sunshine", "access", "b3-door1")  # a new password replaces the old account
    assert again != password and len(Credentials(tmp_path / "credentials.json").devices) == 1


def test_broker_files_need_the_hubs_credentials(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="user:password"):
        broker_files([], "community", "mqtt://127.0.0.1:1883")
    passwd, acl = broker_files([], "c", "mqtt://hub:pw@broker:1883")
    assert passwd.startswith("hub:$7$") and "topic read c/#" in acl
