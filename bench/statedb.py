"""State-store latency per call: SQLite files versus PostgreSQL 15 on loopback (the figures behind hub/statedb.py).

Starts a throwaway PostgreSQL cluster (tests/support/pg_fixtures.py) and times, one call after the other,
what the hub does on its event loop: a bare round trip (`SELECT 1`), a token check (`Users.authenticate`,
one indexed read), an alert read by id, an alert save (an upsert; a fault opening or changing), an audit
record, and the change-counter poll the hub runs every few seconds. Best and median of `--rounds` rounds
of `--calls` calls. With `--asyncpg DIR` (asyncpg installed there, e.g. `pip install --target DIR asyncpg`)
it also times asyncpg's `SELECT 1` from a coroutine, for the driver comparison.

    PYTHONPATH=. .venv/bin/python bench/statedb.py
    PYTHONPATH=. .venv/bin/python bench/statedb.py --calls 2000 --asyncpg /tmp/asyncpg-t
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices import REGISTRY  # noqa: E402
from hub.alerts.models import open_alert  # noqa: E402
from hub.alerts.store import AlertStore  # noqa: E402
from hub.audit import AuditLog  # noqa: E402
from hub.credentials import Credentials  # noqa: E402
from hub.statedb import PostgresState  # noqa: E402
from hub.users import Users  # noqa: E402
from tests.support.pg_fixtures import start_postgres  # noqa: E402

T0 = 1_790_000_000_000


def timed(call: Callable[[int], object], calls: int, rounds: int) -> tuple[float, float]:
    """(best, median) microseconds per call over `rounds` rounds, after a warm-up round."""
    for i in range(min(calls, 200)):
        call(i)
    per_call = []
    for r in range(rounds):
        started = time.perf_counter()
        for i in range(calls):
            call(r * calls + i)
        per_call.append((time.perf_counter() - started) / calls * 1e6)
    return min(per_call), statistics.median(per_call)


def measure(url: str | None, work: Path, calls: int, rounds: int) -> dict[str, tuple[float, float]]:
    users = Users(work, database_url=url)
    token = users.add("li", "viewer")
    credentials = Credentials(work, url)
    alerts = AlertStore(work / "alerts.db", url)
    audit = AuditLog(work / "audit.db", url)
    spec = REGISTRY["elevator"].faults["trapped_passenger"]
    alert = open_alert("s1", "elevator", "e1", "trapped_passenger", spec, "between_floors", T0)
    alerts.save(alert)
    out = {
        "round trip (SELECT 1)": timed(lambda i: alerts.state.one("SELECT 1"), calls, rounds),
        "token check (authenticate)": timed(lambda i: users.authenticate(token), calls, rounds),
        "alert by id (get)": timed(lambda i: alerts.get(alert.id), calls, rounds),
        "alert save (upsert)": timed(lambda i: alerts.save(replace(alert, occurrences=i)), calls, rounds),
        "audit record (insert)": timed(lambda i: audit.record("li", "viewer", "x", "y", "ok"), calls, rounds),
        "accounts poll (changed)": timed(lambda i: credentials.db.changed(), calls, rounds),
    }
    for store in (users, credentials, alerts, audit):
        store.close()
    return out


async def asyncpg_round_trip(url: str, calls: int, rounds: int) -> tuple[float, float]:
    import asyncpg  # type: ignore[import-not-found]

    conn = await asyncpg.connect(url)
    for _ in range(200):
        await conn.fetchval("SELECT 1")
    per_call = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            await conn.fetchval("SELECT 1")
        per_call.append((time.perf_counter() - started) / calls * 1e6)
    await conn.close()
    return min(per_call), statistics.median(per_call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--asyncpg", type=Path, help="a directory asyncpg is installed in (pip --target)")
    args = parser.parse_args()
    server = start_postgres()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-statedb-") as tmp:
            sqlite = measure(None, Path(tmp) / "sqlite", args.calls, args.rounds)
            postgres = measure(server.create_database("bench"), Path(tmp) / "pg", args.calls, args.rounds)
        print(f"µs per call, best / median of {args.rounds} x {args.calls} calls (PostgreSQL 15 on loopback, "
              "synchronous_commit off as in the test cluster)")
        print(f"{'':30} {'SQLite (WAL)':>16} {'PostgreSQL':>16}")
        for name in sqlite:
            (sb, sm), (pb, pm) = sqlite[name], postgres[name]
            print(f"{name:30} {sb:7.1f} / {sm:6.1f} {pb:7.1f} / {pm:6.1f}")
        bare = PostgresState(server.url("bench"))
        best, median = timed(lambda i: bare.one("SELECT 1"), args.calls, args.rounds)
        print(f"{'psycopg 3 bare SELECT 1':30} {'':16} {best:7.1f} / {median:6.1f}")
        bare.close()
        if args.asyncpg:
            sys.path.insert(0, str(args.asyncpg))
            best, median = asyncio.run(asyncpg_round_trip(server.url("bench"), args.calls, args.rounds))
            print(f"{'asyncpg SELECT 1 (awaited)':30} {'':16} {best:7.1f} / {median:6.1f}")
    finally:
        server.close()


if __name__ == "__main__":
    main()
