"""Every store on the state seam, one suite run on SQLite (the default) and on PostgreSQL.

Two store objects on one database stand for two hub copies (or a copy and the CLI): each has its own
connection, as another process would."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import TypeVar

import orjson
import pytest

from devices import REGISTRY
from devices.base import Accepted
from hub.alerts.desk import OrderDesk
from hub.alerts.engine import AlertEngine
from hub.alerts.models import HUB_SITE, Alert, acknowledge, open_alert, resolve
from hub.alerts.orders import Sla, WorkOrder, create, dispatch
from hub.alerts.orders import close as close_order
from hub.alerts.store import AlertStore, OrderStore
from hub.audit import AuditLog
from hub.credentials import Credentials, digest_ha1
from hub.deadletter import DeadLetters, Filter
from hub.ingest.decode import Rejected
from hub.registry import Registry
from hub.state import LiveState
from hub.users import Users
from tests.support.pg_fixtures import Postgres, start_postgres

pytestmark = [pytest.mark.integration, pytest.mark.services]

T0 = 1_790_000_000_000
S = TypeVar("S")


def two(make: Callable[[], S]) -> tuple[S, S]:
    """Two of a store on one database: this copy and another."""
    return make(), make()


# --- accounts ------------------------------------------------------------------------------------------------------


def test_users_added_by_one_copy_authenticate_on_the_other(state_url: str | None, tmp_path: Path) -> None:
    hub, other = two(lambda: Users(tmp_path, admin_token="boot", database_url=state_url))
    assert hub.authenticate("boot").role == "admin" and hub.authenticate("nope") is None  # type: ignore[union-attr]
    first = other.add("王师傅", "maintenance")
    assert hub.authenticate(first).name == "王师傅"  # type: ignore[union-attr]
    second = other.add("王师傅", "operator")  # replaced: the old token stops working
    assert hub.authenticate(first) is None and hub.authenticate(second).role == "operator"  # type: ignore[union-attr]
    hub.add("li", "viewer")
    assert [u.name for u in other.list_users()] == ["li", "王师傅"]
    assert other.remove("li") and not hub.remove("li")
    with pytest.raises(ValueError, match="role must be one of"):
        hub.add("x", "root")  # type: ignore[arg-type]
    hub.close()
    other.close()


def test_concurrent_user_writers_lose_nothing(state_url: str | None, tmp_path: Path) -> None:
    def add_many(prefix: str) -> None:
        users = Users(tmp_path, database_url=state_url)
        for i in range(10):
            users.add(f"{prefix}-{i}", "viewer")
        users.close()

    threads = [threading.Thread(target=add_many, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert {u.name for u in Users(tmp_path, database_url=state_url).list_users()} == {
        f"t{n}-{i}" for n in range(4) for i in range(10)}


def test_device_accounts_of_another_copy_are_seen_and_checked(state_url: str | None, tmp_path: Path) -> None:
    hub, cli = two(lambda: Credentials(tmp_path, state_url))
    before = hub.db.changed()
    password = cli.add("sunshine", "gate", "east-1")
    assert hub.db.changed() != before  # what the running hub polls to register new devices
    assert [d.username for d in hub.devices] == ["sunshine.gate.east-1"]
    assert hub.check("sunshine", "gate", "east-1", password) and not hub.check("sunshine", "gate", "east-1", "x")
    again = cli.add("sunshine", "gate", "east-1")  # a new password replaces the account
    assert again != password and len(hub.devices) == 1 and hub.check("sunshine", "gate", "east-1", again)
    assert hub.digest_keys("sunshine", "east-1", ("gate",)) == {"gate": digest_ha1("east-1", again)}  # ha1 column
    unchanged = hub.db.changed()
    assert hub.db.changed() == unchanged  # nothing changed: the poll sees nothing
    hub.close()
    cli.close()


def test_a_legacy_json_is_taken_in_once(state_url: str | None, tmp_path: Path) -> None:
    legacy = {"users": [{"name": "old", "role": "admin", "token_hash": "h" * 64}]}
    (tmp_path / "users.json").write_bytes(orjson.dumps(legacy))
    users = Users(tmp_path, database_url=state_url)
    assert [u.name for u in users.list_users()] == ["old"]
    assert not (tmp_path / "users.json").exists() and (tmp_path / "users.json.migrated").exists()
    users.close()


# --- audit ---------------------------------------------------------------------------------------------------------


def test_the_audit_log_is_one_log_for_every_copy(state_url: str | None, tmp_path: Path) -> None:
    hub, cli = two(lambda: AuditLog(tmp_path / "audit.db", state_url))
    hub.record("调度员", "operator", "command.send", "sunshine/gate/east-1", "ok", {"command": "open", "n": 1})
    cli.record("cli", "admin", "user.add", "li", "ok")
    hub.record("王师傅", "maintenance", "alert.ack", "A1", "refused", {"why": "已确认"})
    recent = cli.recent()
    assert [(r["user"], r["action"], r["outcome"]) for r in recent] == [
        ("王师傅", "alert.ack", "refused"), ("cli", "user.add", "ok"), ("调度员", "command.send", "ok")]
    assert recent[2]["detail"] == {"command": "open", "n": 1} and recent[0]["at"].endswith("Z")
    assert [r["target"] for r in hub.recent(action="user.add")] == ["li"] and len(hub.recent(limit=1)) == 1
    hub.close()
    cli.close()


# --- alerts and work orders ----------------------------------------------------------------------------------------


@pytest.fixture
def alerts(state_url: str | None, tmp_path: Path) -> Iterator[tuple[AlertStore, AlertStore]]:
    """The alert stores of two copies on one database (on SQLite: two connections to one file)."""
    pair = two(lambda: AlertStore(tmp_path / "alerts.db", state_url))
    yield pair
    for store in pair:
        store.close()


def alert(device: str = "e1", at: int = T0, site: str = "s1", code: str = "trapped_passenger") -> Alert:
    return open_alert(site, "elevator", device, code, REGISTRY["elevator"].faults[code], "between_floors", at)


def test_alerts_are_stored_queried_and_counted(alerts: tuple[AlertStore, AlertStore]) -> None:
    store, other = alerts
    a1 = alert("e1", T0)
    a2 = alert("e2", T0 + 1000, code="door_lock_fault")
    hub_alert = alert("hub", T0 + 2000, site=HUB_SITE, code="door_lock_fault")
    for a in (a1, a2, hub_alert):
        assert store.save(a) is a
    acked = acknowledge(a2, "王师傅", "到场", T0 + 5000)
    store.save(acked)
    assert other.get(a2.id) == acked and other.get("nope") is None  # every field back, notes included
    assert {a.id for a in other.active()} == {a1.id, a2.id, hub_alert.id}
    assert other.active_codes("s1") == {("s1", "elevator", "e1"): {"trapped_passenger"},
                                        ("s1", "elevator", "e2"): {"door_lock_fault"}}
    major = REGISTRY["elevator"].faults["door_lock_fault"].severity.value
    assert other.count_active("s1") == {("open", "critical"): 1, ("acknowledged", major): 1, ("open", major): 1}
    assert sorted(other.opened_since(T0 + 500)) == [(T0 + 1000, major), (T0 + 2000, major)]
    assert [a.id for a in other.find(site="s1")] == [hub_alert.id, a2.id, a1.id]  # newest first; the hub's too
    assert [a.id for a in other.find(state="acknowledged")] == [a2.id]
    store.save(resolve(a1, "device", None, T0 + 9000))
    assert {a.id for a in other.active()} == {a2.id, hub_alert.id} and other.get(a1.id).state == "resolved"  # type: ignore[union-attr]


def test_one_fault_seen_by_two_copies_opens_one_alert(alerts: tuple[AlertStore, AlertStore]) -> None:
    store, other = alerts
    mine, theirs = alert(at=T0), alert(at=T0 + 3)  # the same fault, two ids: each copy opened its own
    assert store.save(mine) is mine
    assert other.save(theirs) == mine  # the database refused the second: the first is what is stored
    assert [a.id for a in other.active()] == [mine.id]
    store.save(resolve(mine, "device", None, T0 + 60_000))
    again = alert(at=T0 + 70_000)
    assert other.save(again) is again  # once resolved, the same fault opens a new alert
    assert [a.id for a in store.active()] == [again.id]


def engine(store: AlertStore, sent: list[Alert], clock: list[int]) -> AlertEngine:
    return AlertEngine(REGISTRY, store, LiveState(heartbeat_s=300), Registry(), sent.append, lambda: clock[0])


def fault(copy: AlertEngine, active: bool, now: int) -> None:
    payload = {"type": "fault", "code": "trapped_passenger", "active": active, "detail": "between_floors"}
    model = REGISTRY["elevator"].validate("event", orjson.dumps(payload))
    msg = Accepted("s1", "elevator", "e1", "event", model, now, now, 0)
    state = copy.live.get(("s1", "elevator", "e1"))
    copy.live.apply(state, msg)
    copy.on_message(msg, state)


def test_two_engines_seeing_the_fault_announce_one_alert(alerts: tuple[AlertStore, AlertStore]) -> None:
    clock = [T0]
    sent_a: list[Alert] = []
    sent_b: list[Alert] = []
    a, b = engine(alerts[0], sent_a, clock), engine(alerts[1], sent_b, clock)
    fault(a, True, T0)
    fault(b, True, T0 + 5)  # the other copy hears the same fault (a takeover, a duplicate delivery)
    assert len(sent_a) == 1 and sent_b == []  # announced once, by the copy that opened it
    assert b.active[sent_a[0].key].id == sent_a[0].id  # b now knows the stored alert, not its own
    assert [x.id for x in alerts[0].active()] == [sent_a[0].id]


def test_orders_are_stored_and_one_open_per_alert(alerts: tuple[AlertStore, AlertStore]) -> None:
    store, other = OrderStore(alerts[0]), OrderStore(alerts[1])
    a1 = alert()
    alerts[0].save(a1)
    first = create(a1, "elevator-maintenance", Sla(), "hub", T0)
    assert store.save(first) is first
    second = create(a1, "elevator-maintenance", Sla(), "hub", T0 + 2)  # another copy's order for it
    assert other.save(second) == first and [o.id for o in other.open()] == [first.id]
    taken = dispatch(first, "王师傅", "调度员", None, T0 + 60_000)
    other.save(taken)
    assert store.get(first.id) == taken and store.for_alert(a1.id) == taken and store.get("nope") is None
    assert [o.id for o in store.find(team="elevator-maintenance")] == [first.id]
    assert store.find(since_ms=T0 + 1) == []
    done = close_order(taken, "王师傅", "修好", T0 + 120_000)
    store.save(done)
    assert other.open() == [] and other.save(second) is second  # closed: a new order may open


def test_two_desks_open_one_order(alerts: tuple[AlertStore, AlertStore]) -> None:
    clock = [T0]
    notified: list[WorkOrder] = []
    a1 = alert()
    alerts[0].save(a1)
    desks = [OrderDesk(OrderStore(s), engine(s, [], clock), notified.append, clock=lambda: clock[0])
             for s in alerts]
    made = [desk._changed(create(a1, "elevator-maintenance", Sla(), "hub", T0 + i)) for i, desk in enumerate(desks)]
    assert made[0] == made[1] and [o.id for o in notified] == [made[0].id]


# --- dead letters ---------------------------------------------------------------------------------------------------


def letter(i: int, payload: bytes = b"x" * 100, kind: str = "gate") -> Rejected:
    return Rejected(f"c/s/{kind}/d{i:03d}/telemetry", "not_json", f"bad {i:03d}", payload, 1_000 + i, kind)


def test_dead_letters_keep_within_caps_shared_by_every_copy(state_url: str | None, tmp_path: Path) -> None:
    one = DeadLetters(tmp_path / "probe.db")  # the size of one letter, on its own file
    one.add(letter(0))
    one.flush()
    size = one.size_bytes
    one.close()
    a, b = two(lambda: DeadLetters(tmp_path / "dl.db", max_rows=30, max_bytes=20 * size, database_url=state_url))
    for i in range(25):
        (a if i % 2 else b).add(letter(i))
        if i % 5 == 4:
            a.flush()
            b.flush()
    a.flush()
    b.flush()
    def kept(store: DeadLetters) -> list[int]:
        return sorted(r["received"] - 1_000 for r in store.page(1_000)[0])

    assert kept(a) == list(range(5, 25)) and a.dropped + b.dropped == 5  # the oldest went, whoever added them
    assert (b.rows, b.size_bytes) == (20, 20 * size)  # the totals of both copies' rows
    a.add(letter(99, payload=b"\xff\xfe" + "琼A12345".encode()))
    a.flush()  # past the byte cap again: one more of the oldest goes
    [odd] = b.page(1)[0]
    assert odd["payload_encoding"] == "hex" and bytes.fromhex(odd["payload"]).endswith("琼A12345".encode())
    assert a.dropped + b.dropped == 6 and kept(b) == [*range(6, 25), 99]
    window = b.page(100, Filter(since_ms=1_020, until_ms=1_022))[0]
    assert sorted(r["received"] for r in window) == [1_020, 1_021, 1_022]
    assert b.forget_before(1_015) == 9 and kept(a) == [*range(15, 25), 99] and b.rows == 11
    a.close()
    b.close()


# --- the SQLite files of earlier versions ---------------------------------------------------------------------------


OLD_ALERTS = """
CREATE TABLE alerts (id TEXT PRIMARY KEY, site TEXT NOT NULL, kind TEXT NOT NULL, device TEXT NOT NULL,
    code TEXT NOT NULL, severity TEXT NOT NULL, state TEXT NOT NULL, opened_ms INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE orders (id TEXT PRIMARY KEY, alert_id TEXT NOT NULL, site TEXT NOT NULL, team TEXT NOT NULL,
    state TEXT NOT NULL, created_ms INTEGER NOT NULL, body TEXT NOT NULL);
"""


def test_an_alerts_file_of_an_earlier_version_is_taken_as_it_is(tmp_path: Path) -> None:
    old = alert()
    with sqlite3.connect(tmp_path / "alerts.db") as db:  # as the SQLite-only hub left it: no schema_versions
        db.executescript(OLD_ALERTS)
        db.execute("INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?)", (
            old.id, old.site, old.kind, old.device, old.code, old.severity.value, old.state, old.opened_ms,
            orjson.dumps(asdict(old)).decode()))
    db.close()
    store = AlertStore(tmp_path / "alerts.db")
    assert [a.id for a in store.active()] == [old.id] and store.save(alert(at=T0 + 1)).id == old.id
    assert store.state.query("SELECT component, version FROM schema_versions") == [("alerts", 2)]
    store.close()


# --- riding out a PostgreSQL restart --------------------------------------------------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    server = start_postgres()
    yield server
    server.close()


def test_an_alert_raised_while_postgres_restarts_is_kept(own_postgres: Postgres, tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.db", own_postgres.url())
    first = alert("e1")
    store.save(first)
    own_postgres.stop()
    restarted = threading.Timer(1.0, own_postgres.start)
    restarted.start()
    during = alert("e2", T0 + 1)
    assert store.save(during) is during  # waits for PostgreSQL, then stores it
    restarted.join()
    store.save(replace(first, detail="after the restart"))
    assert {a.id: a.detail for a in AlertStore(tmp_path / "other.db", own_postgres.url()).active()} == {
        first.id: "after the restart", during.id: "between_floors"}
    store.close()
