"""InfluxDB through the one API every generation serves: `/write` + InfluxQL `/query`.

That path works on 1.x natively and on 2.4+ and 3.x through their v1
compatibility endpoints (STACK-NOTES section 1); influxdb-client cannot talk to
1.6 at all, and Flux is gone in 3.x. Only provisioning differs by version: 1.x
needs `CREATE DATABASE`, 2.x a bucket (made with influxdb-client's BucketsApi),
3.x creates the database on the first write.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
from collections.abc import Sequence
from typing import Any

import httpx

from devices.base import Point
from hub.storage.base import (
    INCREASE_LOOKBACK_MS,
    Aggregate,
    AggregateQuery,
    EventQueries,
    StorageError,
    StorageRejected,
    StorageUnavailable,
    buckets,
    keep_groups,
)
from hub.storage.batch import LineBatch
from hub.storage.lineproto import encode, split

log = logging.getLogger(__name__)

GZIP_MIN_BYTES = 4096
"""Smaller bodies go uncompressed: a few lines gain nothing and gzip's header costs more than it saves."""
GZIP_IN_THREAD_BYTES = 65_536
"""Larger bodies are compressed on a worker thread (zlib lets go of the GIL), so the event loop keeps serving."""
ERROR_TEXT_CHARS = 500

PING_TIMEOUT_S = 0.5
"""A ping's whole budget: health and the writer's probe must not wait on a hung server (SIGSTOP answers nothing)."""
WRITE_TIMEOUT_S = 5.0
"""A write's whole budget (provisioning, connect, send, answer). A 5,000-point batch of telemetry takes 50-130 ms on a
healthy 1.6 here (encoding included); past this the server is hung, the batch stays in the outbox and is
written again later, which InfluxDB takes as the same points (same series and time), not new ones."""

RETRYABLE_STATUS = frozenset({401, 403, 408, 429})
"""4xx that say nothing about the data: auth (a config fix, then the outbox catches up), timeout, overload."""


def quote_ident(name: str) -> str:
    """An InfluxQL double-quoted identifier; quotes, backslashes and newlines escaped (no injection)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal; a raw newline would be a parse error, so it is escaped too."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def without_lines(error: str) -> str:
    """InfluxDB's error text with the lines it quotes taken out (`unable to parse '<line>': reason`).

    A line holds a device's fields, plates among them; the error goes to the log, the health answer and
    the dead letters' reason, so only InfluxDB's reason is kept (the dead letter keeps the lines themselves).
    """
    parts = []
    for part in error.split("\n"):
        head, quote, rest = part.partition("unable to parse '")
        if quote:
            reason = rest.rpartition("': ")[2] if "': " in rest else "unreadable line"
            part = f"{head}unable to parse a line: {reason}"
        parts.append(part)
    return "\n".join(parts)


def _auth_header(token: str | None) -> dict[str, str]:
    """`user:password` -> Basic (1.x users; 2.x/3.x accept any user with the token as password), else Token."""
    if not token:
        return {}
    if ":" in token:
        return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
    return {"Authorization": f"Token {token}"}


def _gzip(body: bytes, level: int) -> bytes:
    return gzip.compress(body, compresslevel=level)


class InfluxStorage(EventQueries):
    """A store on InfluxDB 1.x, 2.x or 3.x, over one keep-alive HTTP client."""

    name = "influxdb"
    wire_format = "line-protocol"

    def __init__(
        self,
        url: str,
        db: str = "smarthub",
        token: str | None = None,
        timeout_s: float = 10.0,
        *,
        org: str | None = None,
        gzip_level: int = 1,
        write_timeout_s: float = WRITE_TIMEOUT_S,
        ping_timeout_s: float = PING_TIMEOUT_S,
    ) -> None:
        """`timeout_s` bounds each phase of a query; writes and pings have their own, shorter, whole budgets."""
        self.url = url.rstrip("/")
        self.db = db
        self.token = token
        self.org = org
        self.gzip_level = gzip_level
        self.write_timeout_s = write_timeout_s
        self.ping_timeout_s = ping_timeout_s
        self.version: str | None = None
        self._provisioned = False
        self._http = httpx.AsyncClient(base_url=self.url, headers=_auth_header(token), timeout=timeout_s)

    async def start(self) -> None:
        """Provision now if the server answers; otherwise warn and let the first write do it."""
        try:
            await self._provision()
        except StorageError as exc:
            log.warning("InfluxDB at %s not ready (%s); will create %r on the first write", self.url, exc, self.db)

    async def close(self) -> None:
        await self._http.aclose()

    async def ping(self) -> bool:
        """True when `/ping` answers within `ping_timeout_s` (httpx's per-phase timeouts alone could add up)."""
        try:
            async with asyncio.timeout(self.ping_timeout_s):
                return (await self._http.get("/ping", timeout=self.ping_timeout_s)).status_code < 300
        except Exception:  # noqa: BLE001 - health checks must never raise (TimeoutError included)
            return False

    async def _provision(self) -> None:
        """Create the database or bucket where this server version needs it."""
        try:
            response = await self._http.get("/ping")
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"cannot reach {self.url}: {exc!r}") from None
        if response.status_code >= 300:
            raise StorageUnavailable(f"{self.url}/ping answered {response.status_code}")
        self.version = response.headers.get("X-Influxdb-Version", "")
        major = self.version.lstrip("v")[:1]
        try:
            if major == "1":
                await self._statement(f"CREATE DATABASE {quote_ident(self.db)}")  # idempotent
            elif major == "2":
                await asyncio.to_thread(self._create_bucket)
        except StorageRejected as exc:
            # Not allowed to create it (a non-admin user or a write-only token): an admin may
            # have made it already. Writes then find out, with a 404 if it does not exist.
            log.warning("cannot create InfluxDB database %r, assuming it exists: %s", self.db, exc)
        self._provisioned = True
        log.info("InfluxDB %s at %s, database %r", self.version or "(version unknown)", self.url, self.db)

    def _create_bucket(self) -> None:
        """InfluxDB 2.x: create the bucket if missing (2.x does not create buckets on write)."""
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.rest import ApiException

        try:
            org: dict[Any, Any] = {"org": self.org} if self.org else {}  # None is not a valid org argument
            with InfluxDBClient(url=self.url, token=self.token or "", **org) as client:
                buckets = client.buckets_api()
                if buckets.find_bucket_by_name(self.db) is not None:
                    return
                if self.org is None:
                    org_id = client.organizations_api().find_organizations()[0].id
                    buckets.create_bucket(bucket_name=self.db, org_id=org_id)
                else:
                    buckets.create_bucket(bucket_name=self.db, org=self.org)
        except ApiException as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (408, 429):
                raise StorageRejected(f"creating bucket {self.db!r}: {exc.status} {exc.body}") from None
            raise StorageUnavailable(f"creating bucket {self.db!r}: {exc.status} {exc.reason}") from None
        except Exception as exc:  # urllib3 connection errors and the like
            raise StorageUnavailable(f"creating bucket {self.db!r}: {exc!r}") from None

    def encode(self, points: Sequence[Point]) -> bytes:
        """Line protocol, millisecond precision (`hub.storage.lineproto`)."""
        return encode(points)

    def batch(self) -> LineBatch:
        return LineBatch()

    def split(self, body: bytes) -> list[bytes]:
        return split(body)

    async def write(self, points: Sequence[Point]) -> None:
        await self.write_encoded([self.encode(points)])

    async def write_encoded(self, bodies: Sequence[bytes]) -> None:
        """One request for all the bodies, within `write_timeout_s`; see `_raise_for` for what each failure
        becomes."""
        body = b"\n".join(b for b in bodies if b)
        gzipped = bool(self.gzip_level) and len(body) >= GZIP_MIN_BYTES
        if gzipped:
            if len(body) >= GZIP_IN_THREAD_BYTES:
                body = await asyncio.to_thread(_gzip, body, self.gzip_level)
            else:
                body = _gzip(body, self.gzip_level)
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        try:
            async with asyncio.timeout(self.write_timeout_s):
                if not self._provisioned:
                    await self._provision()
                if not body:
                    return
                response = await self._http.post(
                    "/write", params={"db": self.db, "precision": "ms"}, content=body, headers=headers,
                    timeout=self.write_timeout_s,
                )
        except TimeoutError:
            raise StorageUnavailable(f"write to {self.url} got no answer within {self.write_timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"write to {self.url} failed: {exc!r}") from None
        if response.status_code >= 300:
            self._raise_for(response)

    def _raise_for(self, response: httpx.Response) -> None:
        """Map an error answer: retry later (StorageUnavailable) or never (StorageRejected)."""
        status = response.status_code
        try:
            detail = str(response.json().get("error") or response.text)
        except (ValueError, AttributeError):  # not JSON, or not an object
            detail = response.text
        text = without_lines(detail)[:ERROR_TEXT_CHARS]
        if status == 404:  # database not found: dropped, or never made (outage at start): make it again
            self._provisioned = False
            raise StorageUnavailable(f"InfluxDB answered 404 for database {self.db!r}: {text}")
        if status >= 500 or status in RETRYABLE_STATUS:
            raise StorageUnavailable(f"InfluxDB answered {status}: {text}")
        # 400 field type conflict or parse error: 1.x has written the other lines ("partial write").
        raise StorageRejected(f"InfluxDB answered {status}: {text}")

    async def _statement(self, statement: str, db: bool = False) -> None:
        """Run a management statement (POST /query, as 1.x requires for writes to the schema)."""
        params = {"q": statement, **({"db": self.db} if db else {})}
        try:
            response = await self._http.post("/query", params=params)
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"cannot reach {self.url}: {exc!r}") from None
        if response.status_code >= 300:
            raise (StorageRejected if response.status_code in (401, 403) else StorageUnavailable)(
                f"{statement!r} answered {response.status_code}: {response.text[:ERROR_TEXT_CHARS]}"
            )
        try:
            results = response.json().get("results", ())
        except ValueError:  # not InfluxDB's JSON: something else answers on that port
            raise StorageUnavailable(f"{statement!r}: unexpected answer {response.text[:ERROR_TEXT_CHARS]!r}") from None
        for result in results:
            if "error" in result:
                raise StorageRejected(f"{statement!r}: {result['error']}")

    async def query(self, influxql: str) -> list[dict[str, Any]]:
        """Run InfluxQL; returns the series as `{name, columns, values[, tags]}`, times in epoch ms.

        1.x answers statement errors with HTTP 200 and `results[i].error`; they raise
        StorageRejected here. A missing database is an empty answer: nothing stored yet.
        """
        try:
            response = await self._http.get("/query", params={"db": self.db, "q": influxql, "epoch": "ms"})
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"query to {self.url} failed: {exc!r}") from None
        status = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = {"error": response.text[:ERROR_TEXT_CHARS]}
        if status >= 500 or status in RETRYABLE_STATUS:
            raise StorageUnavailable(f"InfluxDB answered {status}: {data}")
        if status >= 300 and "database not found" not in str(data.get("error")):
            raise StorageRejected(f"InfluxDB answered {status} to {influxql!r}: {data}")
        series: list[dict[str, Any]] = []
        for result in data.get("results", ()):
            if "error" in result:
                if result["error"].startswith("database not found"):
                    continue
                raise StorageRejected(f"InfluxQL error in {influxql!r}: {result['error']}")
            series.extend(result.get("series", ()))
        return series

    async def query_points(
        self,
        measurements: Sequence[str],
        where: dict[str, str],
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 100,
    ) -> list[tuple[str, int, dict[str, Any]]]:
        """(measurement, time ms, tags and fields) of the newest points matching tag equalities, newest first.

        Without GROUP BY each measurement is one series, so LIMIT applies per
        measurement and the merge keeps the newest `limit` of them. Equal times
        come out by measurement name, then by series key descending (InfluxDB's own
        order within a measurement, which the embedded store copies).
        """
        if limit <= 0 or not measurements:  # InfluxQL's LIMIT 0 means no limit at all
            return []
        conditions = [f"{quote_ident(k)} = {quote_string(v)}" for k, v in where.items()]
        if since_ms is not None:
            conditions.append(f"time >= {int(since_ms)}ms")
        if until_ms is not None:
            conditions.append(f"time <= {int(until_ms)}ms")
        sql = f"SELECT * FROM {','.join(quote_ident(m) for m in measurements)}"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += f" ORDER BY time DESC LIMIT {int(limit)}"
        rows: list[tuple[str, int, dict[str, Any]]] = []
        for series in await self.query(sql):
            columns = series["columns"]
            for values in series["values"]:
                record = {c: v for c, v in zip(columns, values, strict=True) if v is not None}
                rows.append((series["name"], int(record.pop("time")), record))
        rows.sort(key=lambda r: (-r[1], r[0]))  # stable: keeps the server's order within a measurement
        return rows[:limit]

    async def delete_events(self, kind: str, event_type: str, before_ms: int) -> None:
        """InfluxQL DELETE, which 1.x, 2.x (compatibility API) and 3.x accept with a tag predicate."""
        await self._statement(f"DELETE FROM {quote_ident(kind + '_event')} WHERE {quote_ident('type')} = "
                              f"{quote_string(event_type)} AND time < {before_ms * 1_000_000}", db=True)

    async def aggregate(
        self, measurement: str, fn: Aggregate, field: str, where: dict[str, str], since_ms: int, until_ms: int,
        every_ms: int, offset_ms: int = 0,
    ) -> list[tuple[int, float | None]]:
        """InfluxQL GROUP BY time(): the aggregation runs in the database, whatever the data's size."""
        query = AggregateQuery(measurement, fn, field, where, since_ms, until_ms, every_ms, offset_ms)
        return (await self.aggregate_many([query]))[0]

    async def aggregate_many(self, queries: Sequence[AggregateQuery]) -> list[list[tuple[int, float | None]]]:
        """Each statement in its own request, all at once: InfluxDB runs the statements of one request one
        after the other, concurrent requests side by side on its cores."""
        if not queries:
            return []
        statements = [_aggregate_sql(q.measurement, q.fn, q.field, q.where, q.since_ms, q.until_ms, q.every_ms,
                                     q.offset_ms, ()) for q in queries]
        results = await asyncio.gather(*(self.query(statement) for statement in statements))
        answers = []
        for q, result in zip(queries, results, strict=True):
            found = {int(t): v for series in result for t, v in series["values"]}
            answers.append([(t, found.get(t, q.empty)) for t in q.buckets])
        return answers

    async def aggregate_by(
        self, measurement: str, fn: Aggregate, field: str, where: dict[str, str], since_ms: int, until_ms: int,
        every_ms: int, by: Sequence[str], offset_ms: int = 0,
    ) -> dict[tuple[str, ...], list[tuple[int, float | None]]]:
        """One `GROUP BY time(...), "tag", ...` query; InfluxDB answers one series per group."""
        sql = _aggregate_sql(measurement, fn, field, where, since_ms, until_ms, every_ms, offset_ms, by)
        groups: dict[tuple[str, ...], dict[int, float | None]] = {}
        for series in await self.query(sql):
            tags = series.get("tags") or {}
            found = groups.setdefault(tuple(tags.get(t) or "" for t in by), {})
            found.update((int(t), v) for t, v in series["values"])
        return keep_groups(groups, fn, since_ms, until_ms, every_ms, offset_ms)

    async def increase(
        self, measurement: str, field: str, where: dict[str, str], since_ms: int, until_ms: int, every_ms: int,
        offset_ms: int = 0, lookback_ms: int = INCREASE_LOOKBACK_MS,
    ) -> list[tuple[int, float | None]]:
        """`sum(step)` per bucket over a subquery of `non_negative_difference` per (site, device): one query.

        InfluxDB narrows a subquery to its outer query's time range, so both look back, and the buckets
        before the range are dropped here.
        """
        times = buckets(since_ms, until_ms, every_ms, offset_ms)
        since_ms = times[0] if times else since_ms
        conditions = [f"{quote_ident(k)} = {quote_string(v)}" for k, v in where.items()]
        conditions += [f"time >= {int(since_ms - lookback_ms)}ms", f"time < {int(until_ms)}ms"]
        inner = (f"SELECT non_negative_difference({quote_ident(field)}) AS step FROM {quote_ident(measurement)}"
                 f" WHERE {' AND '.join(conditions)} GROUP BY \"site\", \"device\"")
        sql = (f"SELECT sum(step) FROM ({inner}) WHERE time >= {int(since_ms - lookback_ms)}ms"
               f" AND time < {int(until_ms)}ms GROUP BY time({int(every_ms)}ms, {int(offset_ms)}ms) fill(none)")
        found = {int(t): v for series in await self.query(sql) for t, v in series["values"]}
        return [(t, found.get(t)) for t in times]


def _aggregate_sql(measurement: str, fn: Aggregate, field: str, where: dict[str, str], since_ms: int, until_ms: int,
                   every_ms: int, offset_ms: int, by: Sequence[str]) -> str:
    """`SELECT fn(field) ... GROUP BY time(every, offset)[, tags]`, every name and value quoted."""
    conditions = [f"{quote_ident(k)} = {quote_string(v)}" for k, v in where.items()]
    conditions += [f"time >= {int(since_ms)}ms", f"time < {int(until_ms)}ms"]
    fill = "fill(none)"  # empty buckets are filled in here: half the answer to parse for sparse series
    group = "".join(f", {quote_ident(t)}" for t in by)
    return (f"SELECT {fn}({quote_ident(field)}) FROM {quote_ident(measurement)} WHERE {' AND '.join(conditions)}"
            f" GROUP BY time({int(every_ms)}ms, {int(offset_ms)}ms){group} {fill}")
