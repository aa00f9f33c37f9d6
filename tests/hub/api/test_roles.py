"""Every API route against every role: each gets exactly what it should. Plus commands and the audit log."""

from __future__ import annotations

import asyncio

import pytest

from hub.config import parse_mqtt_url
from hub.users import ROLES
from simulators.community import build
from simulators.runner import LiveRun
from tests.support.hub_fixtures import HubRun, eventually
from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER

pytestmark = [pytest.mark.integration, pytest.mark.services]

# (method, path, body, the lowest role allowed; None: no token needed)
ROUTES = [
    ("GET", "/api/health", None, None),
    ("GET", "/metrics", None, None),
    ("GET", "/api/devices", None, "viewer"),
    ("GET", "/api/events", None, "viewer"),
    ("GET", "/api/alerts", None, "viewer"),
    ("GET", "/api/orders", None, "viewer"),
    ("GET", "/api/incidents", None, "viewer"),
    ("GET", "/api/orders/report", None, "viewer"),
    ("GET", "/api/reliability", None, "viewer"),
    ("GET", "/api/charging/sunshine", None, "viewer"),  # 404: no capacity declared
    ("GET", "/api/district", None, "viewer"),
    ("GET", "/api/district/xinhe", None, "viewer"),  # 404: no district declared
    ("PUT", "/api/charging/sunshine/nobody/plan", {"energy_kwh": 10}, "operator"),  # 404 likewise
    ("POST", "/api/alerts/none/ack", {"by": "x"}, "maintenance"),
    ("POST", "/api/alerts/none/resolve", {"by": "x"}, "maintenance"),
    ("POST", "/api/alerts/none/order", {"by": "x"}, "maintenance"),
    ("POST", "/api/incidents/none/ack", {"note": "x"}, "maintenance"),  # 404 once allowed
    ("POST", "/api/incidents/none/resolve", {"note": "x"}, "maintenance"),
    ("POST", "/api/orders/none/dispatch", {"by": "x"}, "maintenance"),
    ("POST", "/api/devices/sunshine/gate/nobody/commands", {"op": "open"}, "operator"),  # 504: nobody answers
    ("GET", "/api/deadletters", None, "admin"),
    ("GET", "/api/audit", None, "admin"),
    ("POST", "/api/users", {"name": "n", "role": "viewer"}, "admin"),
]


@pytest.mark.parametrize(("method", "path", "body", "lowest"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
async def test_role_table(embedded_hub: HubRun, method: str, path: str, body: dict | None, lowest: str | None) -> None:  # type: ignore[type-arg]
    embedded_hub.hub.commands.timeout_s = 0.2
    tokens = {role: embedded_hub.hub.users.add(f"u-{role}", role) for role in ROLES}  # type: ignore[arg-type]
    for role, token in [("anonymous", None), *tokens.items()]:
        headers = {"Authorization": f"Bearer {token}"} if token else {"Authorization": ""}
        response = await embedded_hub.api.request(method, path, json=body, headers=headers)
        if lowest is None:
            allowed = True
        elif role == "anonymous":
            allowed = False
            assert response.status_code == 401, (role, response.text)
        else:
            allowed = ROLES.index(role) >= ROLES.index(lowest)  # type: ignore[arg-type]
            if not allowed:
                assert response.status_code == 403, (role, response.status_code)
        if allowed:
            assert response.status_code not in (401, 403), (role, response.status_code, response.text)


async def test_viewers_see_plates_masked_operators_whole(embedded_hub: HubRun) -> None:
    run = embedded_hub
    viewer, operator = run.hub.users.add("v", "viewer"), run.hub.users.add("o", "operator")
    await run.publish(run.topic("gate", "g1", "event"), {
        "type": "passage", "plate": "琼A12345", "plate_color": "blue", "direction": "in", "lane": "1",
        "vehicle_class": "car", "confidence": 0.9, "decision": "allowed", "category": "resident"})
    await eventually(lambda: sum(run.hub.pipeline.stats.accepted.values()) == 1, what="the passage")
    await run.stored()
    as_viewer = (await run.api.get("/api/events", headers={"Authorization": f"Bearer {viewer}"})).json()
    as_operator = (await run.api.get("/api/events", headers={"Authorization": f"Bearer {operator}"})).json()
    assert as_viewer[0]["plate"] == "琼A·1***5" and as_operator[0]["plate"] == "琼A12345"
    device = (await run.api.get("/api/devices", headers={"Authorization": f"Bearer {viewer}"})).json()[0]
    assert device["last_event"]["plate"] == "琼A·1***5"


async def test_commands_are_answered_refused_or_timed_out_and_always_audited(embedded_hub: HubRun) -> None:
    run = embedded_hub
    operator = {"Authorization": f"Bearer {run.hub.users.add('张调度', 'operator')}"}
    community = build(run.site, 1, 10)
    gate = community.of("gate")[0].device
    live = LiveRun(community, parse_mqtt_url(run.broker.url(DEVICE_USER, DEVICE_PASSWORD)), run.root, speed=1)
    task = asyncio.create_task(live.run(0, None))
    try:
        await eventually(lambda: len(live.clients) == 10, timeout=10, what="simulated devices connected")
        url = f"/api/devices/{run.site}/gate/{gate}/commands"
        response = await run.api.post(url, json={"op": "open"}, headers=operator)
        assert response.status_code == 200 and response.json()["ok"] is True
        assert (await run.api.post(url, json={"op": "fly"}, headers=operator)).status_code == 422
        elevator = f"/api/devices/{run.site}/elevator/{community.of('elevator')[0].device}/commands"
        refused = await run.api.post(elevator, json={"op": "open"}, headers=operator)
        assert refused.status_code == 403 and "never driven remotely" in refused.text
        run.hub.commands.timeout_s = 0.5
        silent = await run.api.post(f"/api/devices/{run.site}/gate/nobody/commands", json={"op": "open"},
                                    headers=operator)
        assert silent.status_code == 504
    finally:
        live.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await live.close()
    trail = (await run.api.get("/api/audit", params={"action": "device.command"})).json()
    assert [(a["user"], a["outcome"]) for a in trail] == [
        ("张调度", "refused 504"), ("张调度", "refused 403"), ("张调度", "refused 422"), ("张调度", "ok")]
    assert trail[-1]["detail"]["reply"]["ok"] is True and trail[-1]["target"] == f"{run.site}/gate/{gate}"


async def test_the_catalog_says_which_role_each_command_needs_and_the_command_route_agrees(
        embedded_hub: HubRun) -> None:
    run = embedded_hub
    run.hub.commands.timeout_s = 0.2  # nobody answers: an allowed command ends in 422 (its args) or 504
    kinds = (await run.api.get("/api/catalog")).json()["kinds"]
    assert kinds["meter"]["command_roles"] == {"relay": "admin", "valve": "admin"}  # cutting a supply
    assert kinds["gate"]["command_roles"] == {"close": "operator", "open": "operator"}
    assert all(list(k["command_roles"]) == k["commands"] for k in kinds.values()), "every command, no other"
    operator = {"Authorization": f"Bearer {run.hub.users.add('op-catalog', 'operator')}"}
    for kind, listed in kinds.items():
        for op, role in listed["command_roles"].items():
            response = await run.api.post(f"/api/devices/{run.site}/{kind}/nobody/commands", json={"op": op},
                                          headers=operator)
            if role == "admin":
                assert response.status_code == 403 and "needs the admin role" in response.text, (kind, op)
            else:
                assert response.status_code in (422, 504), (kind, op, response.status_code, response.text)


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"NaN", b"Infinity", b'"Infinity"'])
async def test_a_command_argument_that_is_not_a_finite_number_is_refused(embedded_hub: HubRun, number: bytes) -> None:
    """1e400 parses to an infinity; sent on, orjson wrote it as null and a charger got `limit_kw: null`."""
    run = embedded_hub
    run.hub.commands.timeout_s = 0.3  # had it been sent, nobody answers: 504, not 422
    operator = {"Authorization": f"Bearer {run.hub.users.add('张调度', 'operator')}",
                "Content-Type": "application/json"}
    body = b'{"op": "set_limit", "args": {"limit_kw": %s}}' % number
    response = await run.api.post(f"/api/devices/{run.site}/charger/c1/commands", content=body, headers=operator)
    assert response.status_code == 422, response.text
    assert "finite" in response.text
    # A non-finite JSON number is refused before the route reads the body (hub.api.guard), the string
    # "Infinity" by the op's model, audited; either way nothing was sent.
    entries = (await run.api.get("/api/audit", params={"action": "device.command"})).json()
    assert [e["outcome"] for e in entries] == (["refused 422"] if number.startswith(b'"') else [])


@pytest.mark.parametrize("backend", ["embedded", "influx"])
async def test_personal_data_is_forgotten_after_its_retention(settings_for, mosquitto, backend: str) -> None:  # type: ignore[no-untyped-def]
    import time

    from tests.support.hub_fixtures import running_hub

    async with running_hub(settings_for(backend, personal_retention_days=1), mosquitto) as run:
        await _forget(run, int(time.time() * 1000) - 2 * 86_400_000)  # two days old, retention one day


async def _forget(run: HubRun, old: int) -> None:
    passage = {"type": "passage", "plate": "琼A12345", "plate_color": "blue", "direction": "in", "lane": "1",
               "vehicle_class": "car", "confidence": 0.9, "decision": "allowed", "category": "resident"}
    await run.publish_many([
        (run.topic("gate", "g1", "event"), passage | {"id": "old", "ts": old}),
        (run.topic("gate", "g1", "event"), passage | {"id": "new"}),
        (run.topic("gate", "g1", "event"), {"type": "barrier", "state": "open", "id": "barrier", "ts": old}),
        (run.topic("access", "d1", "event"), {"type": "access", "method": "face", "subject": "p-1",
                                              "result": "granted", "id": "door", "ts": old}),
    ])
    await eventually(lambda: sum(run.hub.pipeline.stats.accepted.values()) == 4, what="four events")
    await run.stored()
    await run.hub.forget_personal_data()
    assert sorted(e["id"] for e in await run.events(limit=100)) == ["barrier", "new"]


async def test_added_devices_are_registered_and_personal_data_stays_out_of_logs(
    settings_for, mosquitto, caplog: pytest.LogCaptureFixture  # type: ignore[no-untyped-def]
) -> None:
    from hub.credentials import Credentials
    from tests.support.hub_fixtures import running_hub

    settings = settings_for("embedded")
    Credentials(settings.data_dir).add("sunshine", "gate", "east-1")
    async with running_hub(settings, mosquitto) as run:
        listed = (await run.api.get("/api/devices")).json()
        assert [(d["device"], d["registered"], d["online"]) for d in listed] == [("east-1", True, False)]
        bad_passage = {"type": "passage", "plate": "琼B77777", "plate_color": "purple", "direction": "in",
                       "lane": "1", "vehicle_class": "car", "confidence": 0.9, "decision": "allowed",
                       "category": "resident"}
        await run.publish(run.topic("gate", "east-1", "event"), bad_passage)
        await eventually(lambda: run.hub.pipeline.stats.rejected, what="the bad passage")
    assert "琼B77777" not in caplog.text and "plate_color" in caplog.text  # the reason, never the plate
