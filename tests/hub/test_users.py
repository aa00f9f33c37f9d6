"""API users in the shared accounts store: seen by every process at once, nothing lost to a concurrent writer."""

from __future__ import annotations

import multiprocessing
import stat
import threading
from pathlib import Path

import orjson
import pytest

from hub.users import Users, token_hash

pytestmark = pytest.mark.unit


def test_tokens_are_shown_once_and_stored_hashed(tmp_path: Path) -> None:
    users = Users(tmp_path)
    token = users.add("王师傅", "maintenance")
    assert users.authenticate(token) == users.list_users()[0] and users.list_users()[0].role == "maintenance"
    users.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("accounts.db*"))
    assert token.encode() not in raw and token_hash(token).encode() in raw
    assert stat.S_IMODE((tmp_path / "accounts.db").stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="role must be one of"):
        Users(tmp_path).add("x", "root")  # type: ignore[arg-type]


def test_another_connections_add_replace_and_remove_count_at_the_next_check(tmp_path: Path) -> None:
    hub = Users(tmp_path, admin_token="boot")
    cli = Users(tmp_path)  # its own connection, as `smarthub user add` in another process has
    assert hub.authenticate("boot") is not None and hub.authenticate("nope") is None
    first = cli.add("li", "viewer")
    assert hub.authenticate(first).role == "viewer"  # type: ignore[union-attr]
    second = cli.add("li", "operator")  # a role change gives a new token; the old one stops working
    assert hub.authenticate(first) is None and hub.authenticate(second).role == "operator"  # type: ignore[union-attr]
    assert cli.remove("li") and not cli.remove("li")
    assert hub.authenticate(second) is None


def test_a_users_json_of_an_earlier_version_is_taken_in_once(tmp_path: Path) -> None:
    legacy = {"users": [{"name": "old", "role": "admin", "token_hash": token_hash("old-token")}]}
    (tmp_path / "users.json").write_bytes(orjson.dumps(legacy))
    users = Users(tmp_path)
    assert users.authenticate("old-token").name == "old"  # type: ignore[union-attr]
    assert not (tmp_path / "users.json").exists() and (tmp_path / "users.json.migrated").exists()
    users.remove("old")
    assert Users(tmp_path).authenticate("old-token") is None  # the renamed file is not read again


def _add_many(data_dir: str, prefix: str, count: int) -> None:
    users = Users(Path(data_dir))
    for i in range(count):
        users.add(f"{prefix}-{i}", "viewer")


def test_concurrent_writers_in_threads_and_processes_lose_nothing(tmp_path: Path) -> None:
    (tmp_path / "users.json").write_bytes(orjson.dumps(
        {"users": [{"name": "legacy", "role": "viewer", "token_hash": token_hash("t")}]}))
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, each with its own connection
    procs = [ctx.Process(target=_add_many, args=(str(tmp_path), f"p{n}", 10)) for n in range(4)]
    threads = [threading.Thread(target=_add_many, args=(str(tmp_path), f"t{n}", 10)) for n in range(4)]
    for worker in (*procs, *threads):
        worker.start()
    for worker in (*procs, *threads):
        worker.join(60)
    assert [p.exitcode for p in procs] == [0] * 4
    names = {u.name for u in Users(tmp_path).list_users()}
    assert names == {"legacy"} | {f"{w}{n}-{i}" for w in "pt" for n in range(4) for i in range(10)}


def test_police_stand_outside_the_staff_line() -> None:
    """警务 may do only what names it: no staff role's reads (so they see personal data masked where they read),
    and no staff role is police."""
    from hub.users import ALL_ROLES, ROLES, TITLES, User

    police = User("王警官", "police")
    assert not any(police.can(role) for role in ROLES) and police.can("police")
    assert not any(User("a", role).can("police") for role in ROLES)
    assert TITLES["police"] == ("警务", "Police") and set(TITLES) == set(ALL_ROLES)


def test_a_police_user_is_stored_with_its_ascii_id(tmp_path: Path) -> None:
    users = Users(tmp_path)
    token = users.add("王警官", "police")
    assert users.authenticate(token).role == "police"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="police"):
        users.add("x", "警务")  # type: ignore[arg-type]
    users.close()
