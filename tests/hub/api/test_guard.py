"""The API refuses before it reads: token first, then the body's size, and odd values get a 4xx, never a 5xx.

Each test does what an attacker did (issue 11): a 50 MB body without a token, NaN and 1e999 in JSON, a
`since` past any calendar, control characters in filters and paths. Bodies are async generators that count
what the server took from them, so "not read" is measured, not assumed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.users import ROLES
from tests.support.hub_fixtures import ADMIN_TOKEN, HubRun, eventually, hub_settings, running_hub
from tests.support.influx_fixtures import start_influxd
from tests.support.mqtt_fixtures import Broker
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.services]

MB = 2**20
CHUNK = 64 * 1024
LIMIT = 64 * 1024  # the default SMARTHUB_API_MAX_BODY_BYTES
JSON = {"Content-Type": "application/json"}

WRITES = [  # every route that takes a body, with a body it would take
    ("/api/alerts/none/ack", {"by": "x"}),
    ("/api/alerts/none/resolve", {"by": "x"}),
    ("/api/alerts/none/order", {"by": "x"}),
    ("/api/orders/none/dispatch", {"by": "x"}),
    ("/api/devices/sunshine/gate/g1/commands", {"op": "open"}),
    ("/api/users", {"name": "n", "role": "viewer"}),
]


class Counted:
    """A body of `total` bytes in chunks that records how much of it was taken."""

    def __init__(self, total: int, chunk: bytes = b"x" * CHUNK) -> None:
        self.total, self.chunk, self.taken = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.taken < self.total:
            self.taken += len(self.chunk)
            yield self.chunk


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}" if token else ""}


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("token", [None, "wrong-token"])
async def test_a_50_mb_post_without_a_valid_token_is_refused_unread(
    embedded_hub: HubRun, declared: bool, token: str | None
) -> None:
    body = Counted(50 * MB)
    headers = bearer(token) | JSON | ({"Content-Length": str(50 * MB)} if declared else {})
    response = await embedded_hub.api.post("/api/users", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert body.taken <= CHUNK, f"the server read {body.taken} bytes before refusing"


async def test_a_role_below_the_route_is_refused_before_its_body_is_read(embedded_hub: HubRun) -> None:
    viewer = embedded_hub.hub.users.add("v", "viewer")
    body = Counted(50 * MB)
    response = await embedded_hub.api.post("/api/alerts/none/ack", content=body, headers=bearer(viewer) | JSON)
    assert response.status_code == 403 and body.taken <= CHUNK, (response.status_code, body.taken)
    malformed = await embedded_hub.api.post("/api/alerts/none/ack", content=b'{"by": ', headers=bearer(viewer) | JSON)
    assert malformed.status_code == 403


@pytest.mark.parametrize(("path", "_"), WRITES, ids=[p for p, _ in WRITES])
async def test_a_bad_token_with_malformed_json_gets_401_not_422(embedded_hub: HubRun, path: str, _: dict) -> None:  # type: ignore[type-arg]
    for body in (b'{"by": ', b"\xff\xfe", b'{"by": NaN}', b"[" * 100_000):
        response = await embedded_hub.api.post(path, content=body, headers=bearer("wrong") | JSON)
        assert response.status_code == 401, (body[:10], response.status_code)


async def test_over_a_real_socket_the_refusal_comes_before_any_body_byte_is_sent(embedded_hub: HubRun) -> None:
    """uvicorn as `smarthub run` serves it: the answer arrives while the client has sent only the headers."""
    port = free_port()
    server = embedded_hub.hub.http_server("127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, what="the HTTP server")
    try:
        for token, status in [("wrong", b"401"), (ADMIN_TOKEN, b"413")]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"POST /api/users HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {50 * MB}\r\n\r\n".encode())
            await writer.drain()
            async with asyncio.timeout(5):
                answer = await reader.readline()
                assert answer.split()[1] == status, answer
                await reader.read()  # and it closes the connection rather than wait for the 50 MB
            writer.close()
    finally:
        server.should_exit = True
        await serving


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_an_admin_body_over_the_limit_gets_413_and_no_more_than_the_limit_is_read(
    embedded_hub: HubRun, declared: bool
) -> None:
    body = Counted(50 * MB)
    headers = JSON | ({"Content-Length": str(50 * MB)} if declared else {})
    response = await embedded_hub.api.post("/api/users", content=body, headers=headers)
    assert response.status_code == 413, response.text
    assert body.taken <= (CHUNK if declared else LIMIT + CHUNK), body.taken
    assert "larger than 65536 bytes" in response.json()["detail"]


async def test_a_body_just_under_the_limit_is_taken(embedded_hub: HubRun) -> None:
    note = "n" * (LIMIT - 100)
    response = await embedded_hub.api.post("/api/alerts/none/ack", json={"by": "x", "note": note})
    assert response.status_code == 422  # note's own max_length, so the body was read and validated


NON_FINITE = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" + b"0" * 5000]


@pytest.mark.parametrize(("path", "body"), WRITES, ids=[p for p, _ in WRITES])
async def test_non_finite_numbers_anywhere_in_a_body_get_422_never_500(
    embedded_hub: HubRun, path: str, body: dict  # type: ignore[type-arg]
) -> None:
    for number in NON_FINITE:
        for shape in (b'{"by": %s}', b'{"op": "open", "args": {"deep": [1, {"x": %s}]}}',
                      b'{"name": "n", "role": "viewer", "extra": %s}'):
            response = await embedded_hub.api.post(path, content=shape % number, headers=JSON)
            assert response.status_code == 422, (path, number[:10], response.status_code, response.text)
            assert "finite" in response.text or "digits" in response.text, response.text


@pytest.mark.parametrize("value", ["99999999999999999999999", "-1", "253402300800000", "10000-01-01T00:00:00Z",
                                   "0001-01-01T00:00:00Z", "9" * 5000, "1e999", "nan"])
@pytest.mark.parametrize("bound", ["since", "until"])
async def test_times_beyond_any_calendar_get_422_on_both_stores(hub_run: HubRun, bound: str, value: str) -> None:
    response = await hub_run.api.get("/api/events", params={bound: value})
    assert response.status_code == 422, response.text
    assert "SELECT" not in response.text


async def test_the_last_and_first_times_a_store_can_hold_are_taken(hub_run: HubRun) -> None:
    for since, until in [("0", "253402300799999"), ("1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z")]:
        response = await hub_run.api.get("/api/events", params={"since": since, "until": until})
        assert response.status_code == 200, response.text


ODD = ["%0D", "%00", "%0A", "a%0D%0Ab", "%7F", "%1B[31m", "x" * 5000, "%E2%80%8B" * 40, "%FF"]


@pytest.mark.parametrize("value", ODD)
@pytest.mark.parametrize("name", ["site", "kind", "device", "type", "since"])
async def test_odd_event_filters_get_a_4xx_that_echoes_no_query_on_both_stores(
    hub_run: HubRun, name: str, value: str
) -> None:
    response = await hub_run.api.get(f"/api/events?{name}={value}")
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert "SELECT" not in response.text and "FROM" not in response.text


@pytest.mark.parametrize("value", ["%0D", "%00", "x" * 5000])
@pytest.mark.parametrize("path", ["/api/devices?site=", "/api/devices?kind=", "/api/alerts?device=",
                                  "/api/orders?team=", "/api/orders/report?team=", "/api/deadletters?reason=",
                                  "/api/deadletters?kind=", "/api/deadletters?since=", "/api/audit?action=",
                                  "/api/reliability?kind=", "/api/series/traffic?site=",
                                  "/api/series/charging_power?site=", "/api/series/alerts?site=",
                                  "/api/overview?site="])
async def test_odd_filters_of_every_read_get_422(embedded_hub: HubRun, path: str, value: str) -> None:
    response = await embedded_hub.api.get(path + value)
    assert response.status_code == 422, (response.status_code, response.text)


@pytest.mark.parametrize("path", [
    "/api/devices/Sunshine/gate/g1/commands",  # sites are lower case
    "/api/devices/-sunshine/gate/g1/commands",
    "/api/devices/sunshine/gate/g%2E1/commands",
    "/api/devices/sunshine/gate/g%001/commands",
    "/api/devices/sunshine/gate/g%0D1/commands",
    "/api/devices/sunshine/Gate%0A/g1/commands",
    f"/api/devices/{'s' * 65}/gate/g1/commands",
    f"/api/devices/sunshine/gate/{'d' * 65}/commands",
    "/api/alerts/a%00b/ack",
    "/api/alerts/a%0Db/resolve",
    f"/api/alerts/{'a' * 65}/order",
    "/api/orders/WO%0D1/dispatch",
])
async def test_paths_that_break_the_slug_rules_get_422(embedded_hub: HubRun, path: str) -> None:
    body = {"op": "open"} if path.endswith("commands") else {"by": "x"}
    response = await embedded_hub.api.post(path, json=body)
    assert response.status_code == 422, (response.status_code, response.text)


async def test_a_store_that_fails_gets_a_generic_503_and_the_detail_goes_to_the_log(
    mosquitto: Broker, root: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_influxd(tmp_path / "influx")
    try:
        settings = hub_settings(mosquitto, root, tmp_path / "data", server.url)
        async with running_hub(settings, mosquitto) as run:
            assert (await run.api.get("/api/events", params={"site": "sunshine"})).status_code == 200
            server.stop()
            with caplog.at_level(logging.WARNING, logger="hub.api.common"):
                for path in ("/api/events?site=sunshine", "/api/overview", "/api/series/traffic",
                             "/api/series/charging_power"):
                    response = await run.api.get(path)
                    assert response.status_code == 503, (path, response.text)
                    assert response.json() == {"detail": "the store is unavailable; try again later"}
        assert "the store failed" in caplog.text
    finally:
        server.close()


async def test_every_role_gets_no_5xx_from_the_attacks(embedded_hub: HubRun) -> None:
    tokens = [embedded_hub.hub.users.add(f"u-{role}", role) for role in ROLES]  # type: ignore[arg-type]
    for token in [None, *tokens]:
        for path, _ in WRITES:
            for body in (b'{"by": NaN, "op": 1e999}', b"{", b"\x00"):
                response = await embedded_hub.api.post(path, content=body, headers=bearer(token) | JSON)
                assert response.status_code < 500, (path, body, response.status_code)
