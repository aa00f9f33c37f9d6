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
    EventQueries,
    StorageRejected,
    StorageUnavailable,
)
from hub.storage.lineproto import encode

log = logging.getLogger(__name__)

GZIP_MIN_BYTES = 4096
"""Smaller bodies go uncompressed: gzip would cost more than it saves."""


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxStorage(EventQueries):
    """A store on InfluxDB 1.x, 2.x or 3.x."""

    name = "influxdb"

    def __init__(
        self,
        url: str,
        db: str = "smarthub",
        token: str | None = None,
        org: str | None = None,
        timeout_s: float = 10.0,
        gzip_level: int = 1,
    ) -> None:
        self.url = url.rstrip("/")
        self.db = db
        self.token = token
        self.org = org
        self.gzip_level = gzip_level
        self.version: str | None = None
        self._provisioned = False
        headers = {}
        if token and ":" in token:  # user:password (1.x auth, or any user with a token as password)
            headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        elif token:
            headers["Authorization"] = f"Token {token}"
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout_s)

    async def start(self) -> None:
        try:
            await self._provision()
        except StorageUnavailable as exc:
            log.warning("InfluxDB at %s not ready (%s); will create %r on the first write", self.url, exc, self.db)

    async def close(self) -> None:
        await self._http.aclose()

    async def ping(self) -> bool:
        try:
            return (await self._http.get("/ping")).status_code < 300
        except httpx.HTTPError:
            return False

    async def _provision(self) -> None:
        """Create the database or bucket where this server version needs it."""
        try:
            response = await self._http.get("/ping")
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"cannot reach {self.url}: {exc}") from None
        self.version = response.headers.get("X-Influxdb-Version", "")
        major = self.version.lstrip("v")[:1]
        if major == "1":
            await self._statement(f"CREATE DATABASE {quote_ident(self.db)}")
        elif major == "2":
            await asyncio.to_thread(self._create_bucket)
        self._provisioned = True
        log.info("InfluxDB %s at %s, database %r", self.version or "(version unknown)", self.url, self.db)

    def _create_bucket(self) -> None:
        from influxdb_client import InfluxDBClient

        with InfluxDBClient(url=self.url, token=self.token or "", org=self.org) as client:
            buckets = client.buckets_api()
            if buckets.find_bucket_by_name(self.db) is None:
                org_id = None
                if self.org is None:
                    org_id = client.organizations_api().find_organizations()[0].id
                buckets.create_bucket(bucket_name=self.db, org=self.org, org_id=org_id)

    async def write(self, points: Sequence[Point]) -> None:
        if not self._provisioned:
            await self._provision()
        body = encode(points)
        if not body:
            return
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip_level and len(body) >= GZIP_MIN_BYTES:
            body = gzip.compress(body, compresslevel=self.gzip_level)
            headers["Content-Encoding"] = "gzip"
        try:
            response = await self._http.post(
                "/write", params={"db": self.db, "precision": "ms"}, content=body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"write to {self.url} failed: {exc!r}") from None
        if response.status_code < 300:
            return
        text = response.text[:500]
        if response.status_code == 404:  # database not found: dropped, or made before we could
            self._provisioned = False
            raise StorageUnavailable(f"database {self.db!r} not found: {text}")
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise StorageUnavailable(f"InfluxDB answered {response.status_code}: {text}")
        raise StorageRejected(f"InfluxDB answered {response.status_code}: {text}")

    async def _statement(self, statement: str) -> None:
        """Run a management statement (POST /query)."""
        try:
            response = await self._http.post("/query", params={"q": statement})
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"cannot reach {self.url}: {exc!r}") from None
        if response.status_code >= 300:
            raise StorageUnavailable(f"{statement!r} answered {response.status_code}: {response.text[:300]}")

    async def query(self, influxql: str) -> list[dict[str, Any]]:
        """Run InfluxQL; returns series as {name, columns, values}. Statement errors raise."""
        try:
            response = await self._http.get("/query", params={"db": self.db, "q": influxql, "epoch": "ms"})
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"query to {self.url} failed: {exc!r}") from None
        if response.status_code >= 500:
            raise StorageUnavailable(f"InfluxDB answered {response.status_code}: {response.text[:300]}")
        data = response.json()
        if response.status_code >= 300 and "database not found" not in str(data):
            raise StorageRejected(f"InfluxDB answered {response.status_code}: {data}")
        series: list[dict[str, Any]] = []
        for result in data.get("results", ()):
            if "error" in result:
                if "not found" in result["error"]:  # no such database or table yet: nothing stored
                    continue
                raise StorageRejected(f"InfluxQL error: {result['error']}")
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
        """(measurement, time ms, columns) of the newest points matching tag equalities, newest first."""
        conditions = [f"{quote_ident(k)} = {quote_string(v)}" for k, v in where.items()]
        if since_ms is not None:
            conditions.append(f"time >= {since_ms * 1_000_000}")
        if until_ms is not None:
            conditions.append(f"time <= {until_ms * 1_000_000}")
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
        rows.sort(key=lambda r: r[1], reverse=True)
        return rows[:limit]
