"""OCPP 1.6J chargers against a running hub: the `ocpp` library's own ChargePoint, over a real WebSocket.

The hub serves `/ocpp/{site}/{id}` from its uvicorn server; what the charger says must come out as the
charger kind's telemetry, events and alerts, exactly as an MQTT charger's would."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import websockets
from ocpp.exceptions import InternalError, NotSupportedError
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    AvailabilityStatus,
    ChargingProfileStatus,
    ConfigurationStatus,
    DataTransferStatus,
    GetCompositeScheduleStatus,
    RegistrationStatus,
    RemoteStartStopStatus,
    ResetStatus,
)
from websockets.asyncio.client import connect

from hub.config import Settings
from tests.hub.storage.test_storage_faults import locked
from tests.support.hub_fixtures import HubRun, eventually, http_served, hub_settings, running_hub
from tests.support.mqtt_fixtures import Broker

pytestmark = [pytest.mark.integration, pytest.mark.services]

CP = "cp-ocpp-1"


@dataclass
class FooBar:
    """An action OCPP 1.6 does not have (the library names the CALL after the payload's class)."""


@dataclass
class Served:
    run: HubRun
    port: int
    password: str

    def url(self, cp: str = CP, site: str | None = None) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{site or self.run.site}/{cp}"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@asynccontextmanager
async def serving(run: HubRun) -> AsyncIterator[Served]:
    """The hub's HTTP server on a free port, with the charger's account added."""
    password = run.hub.credentials.add(run.site, "charger", CP)  # what `smarthub device add SITE charger ID` does
    async with http_served(run) as port:
        yield Served(run, port, password)


@pytest.fixture
async def served(hub_run: HubRun) -> AsyncIterator[Served]:
    """A hub on each store (embedded and the real InfluxDB), serving HTTP."""
    async with serving(hub_run) as served:
        yield served


class Obedient(ChargePoint):
    """A charge point that takes the central system's profiles, remote stops and operators' calls, and
    remembers them; its composite schedule is the last profile's (or `disobey`'s limit, a charger ignoring it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profiles: list[tuple[int, dict[str, Any]]] = []
        self.stopped: list[int] = []
        self.refuse = False
        self.not_ready = 0
        """How many TxProfiles to reject first, as a charger still setting its transaction up does."""
        self.config = {"ChargingScheduleAllowedChargingRateUnit": "Power", "HeartbeatInterval": "60"}
        self.config_reads: list[list[str] | None] = []
        self.disobey: float | None = None
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> call_result.GetConfiguration:
        self.config_reads.append(key)
        wanted = key or list(self.config)
        return call_result.GetConfiguration(
            configuration_key=[{"key": k, "readonly": False, "value": self.config[k]} for k in wanted
                               if k in self.config],
            unknown_key=[k for k in wanted if k not in self.config] or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str) -> call_result.ChangeConfiguration:
        self.calls.append(("ChangeConfiguration", {"key": key, "value": value}))
        if key not in self.config:
            return call_result.ChangeConfiguration(status=ConfigurationStatus.not_supported)
        self.config[key] = value
        return call_result.ChangeConfiguration(status=ConfigurationStatus.accepted)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, connector_id: int, duration: int, charging_rate_unit: str | None = None
                                  ) -> call_result.GetCompositeSchedule:
        profile = next(p for c, p in reversed(self.profiles) if c == connector_id)
        schedule = profile["charging_schedule"]
        periods = [{"start_period": p["start_period"], "limit": float(p["limit"])}
                   for p in schedule["charging_schedule_period"]]
        if self.disobey is not None:
            periods[0]["limit"] = self.disobey
        return call_result.GetCompositeSchedule(
            status=GetCompositeScheduleStatus.accepted, connector_id=connector_id,
            schedule_start="2026-12-01T10:00:00Z",
            charging_schedule={"charging_rate_unit": schedule["charging_rate_unit"], "duration": duration,
                               "charging_schedule_period": periods})

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, **p: Any) -> call_result.RemoteStartTransaction:
        self.calls.append(("RemoteStartTransaction", {"id_tag": id_tag, **p}))
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str) -> call_result.ChangeAvailability:
        self.calls.append(("ChangeAvailability", {"connector_id": connector_id, "type": type}))
        return call_result.ChangeAvailability(status=AvailabilityStatus.scheduled)

    @on(Action.reset)
    def on_reset(self, type: str) -> call_result.Reset:
        self.calls.append(("Reset", {"type": type}))
        return call_result.Reset(status=ResetStatus.accepted)

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]
                                ) -> call_result.SetChargingProfile:
        self.profiles.append((connector_id, cs_charging_profiles))
        early = self.not_ready > 0 and cs_charging_profiles["charging_profile_purpose"] == "TxProfile"
        self.not_ready -= early
        status = ChargingProfileStatus.rejected if self.refuse or early else ChargingProfileStatus.accepted
        return call_result.SetChargingProfile(status=status)

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int) -> call_result.RemoteStopTransaction:
        self.stopped.append(transaction_id)
        return call_result.RemoteStopTransaction(status=RemoteStartStopStatus.accepted)


@asynccontextmanager
async def charger(served: Served, cp: str = CP) -> AsyncIterator[Obedient]:
    """A connected library ChargePoint, its receive loop running."""
    async with connect(served.url(cp), subprotocols=["ocpp1.6"], additional_headers=basic(cp, served.password)) as ws:
        point = Obedient(cp, ws, response_timeout=10)
        loop = asyncio.create_task(point.start())
        try:
            yield point
        finally:
            loop.cancel()


async def devices(run: HubRun) -> dict[str, Any]:
    response = await run.api.get("/api/devices", params={"kind": "charger"})
    assert response.status_code == 200, response.text
    return {d["device"]: d for d in response.json()}


async def until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    return await eventually(check, timeout=10, what=what)


async def test_a_charger_boots_reports_charges_and_goes_offline(served: Served) -> None:
    run = served.run
    async with charger(served) as cp:
        boot = await cp.call(call.BootNotification(charge_point_model="AC7", charge_point_vendor="Acme",
                                                   firmware_version="1.2.3"))
        assert boot.status == RegistrationStatus.accepted and 1 <= boot.interval <= 60
        assert (await cp.call(call.Heartbeat())).current_time
        listed = await until(lambda: devices(run), "the charger in /api/devices")
        assert listed[CP]["online"] is True

        # A fault on connector 1: an alert opens; NoError clears it.
        await cp.call(call.StatusNotification(connector_id=1, error_code="GroundFailure", status="Faulted"))
        alerts = await until(lambda: _alerts(run, "open"), "the ground_failure alert")
        assert [(a["device"], a["code"], a["severity"]) for a in alerts] == [(CP, "ground_failure", "critical")]
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        await until(lambda: _alerts(run, "resolved"), "the ground_failure alert resolved")

        start = await cp.call(call.StartTransaction(connector_id=1, id_tag="04A2B3C4D5", meter_start=1_532_400,
                                                    timestamp="2026-12-01T10:00:00Z"))
        assert start.id_tag_info["status"] == AuthorizationStatus.accepted and start.transaction_id > 0
        await cp.call(call.MeterValues(connector_id=1, transaction_id=start.transaction_id, meter_value=[{
            "timestamp": "2026-12-01T10:30:00Z",
            "sampledValue": [
                {"value": "1535.6", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
                {"value": "2300", "measurand": "Power.Active.Import", "unit": "W", "phase": "L1"},
                {"value": "2200", "measurand": "Power.Active.Import", "unit": "W", "phase": "L2"},
                {"value": "2100", "measurand": "Power.Active.Import", "unit": "W", "phase": "L3"},
                {"value": "10.1", "measurand": "Current.Import", "phase": "L1"},
                {"value": "229.5", "measurand": "Voltage", "phase": "L1-N"},
                {"value": "41.5", "measurand": "Temperature", "unit": "Celsius"},
                {"value": "62", "measurand": "SoC", "unit": "Percent"},
            ]}]))
        assert run.hub.pipeline.pending == 0  # answered only once committed to the outbox
        telemetry = (await devices(run))[CP]["telemetry"]
        assert telemetry["energy_kwh"] == 1535.6 and telemetry["power_kw"] == 6.6
        assert (telemetry["current_a"], telemetry["voltage_v"], telemetry["temperature_c"], telemetry["soc_pct"]) == (
            10.1, 229.5, 41.5, 62)
        await cp.call(call.StopTransaction(meter_stop=1_550_600, timestamp="2026-12-01T12:44:00Z",
                                           transaction_id=start.transaction_id, reason="EVDisconnected"))
        await run.stored()
        events = {e["type"]: e for e in await run.events(kind="charger", device=CP)}
        assert events["session_start"]["id_tag"] == "04A2B3C4D5"
        assert events["session_start"]["session"] == str(start.transaction_id)
        assert events["session_start"]["meter_start_kwh"] == 1532.4
        stop = events["session_stop"]
        assert (stop["session"], stop["energy_kwh"], stop["duration_s"], stop["reason"]) == (
            str(start.transaction_id), 18.2, 9840, "ev_disconnected")

        assert (await cp.call(call.Authorize(id_tag="anyone"))).id_tag_info["status"] == AuthorizationStatus.accepted
        transfer = await cp.call(call.DataTransfer(vendor_id="com.acme", message_id="x", data="y"))
        assert transfer.status == DataTransferStatus.unknown_vendor_id
    # The WebSocket closed: offline, as an MQTT charger's last will would say.
    await until(lambda: _offline(run), "the charger offline")


async def _alerts(run: HubRun, state: str) -> list[dict[str, Any]]:
    response = await run.api.get("/api/alerts", params={"kind": "charger", "state": state})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _offline(run: HubRun) -> bool:
    return (await devices(run))[CP]["online"] is False


async def test_unknown_and_unserved_actions_get_their_call_errors_and_the_connection_survives(served: Served) -> None:
    async with charger(served) as cp:
        with pytest.raises(OcppNotImplemented):
            await cp.call(FooBar(), suppress=False, skip_schema_validation=True)
        with pytest.raises(NotSupportedError):  # an OCPP 1.6 action, but one a charge point serves, not we
            await cp.call(call.ClearCache(), suppress=False, skip_schema_validation=True)
        assert (await cp.call(call.Heartbeat())).current_time  # still connected, still answered


async def test_a_handshake_without_the_subprotocol_or_the_password_is_refused(served: Served) -> None:
    with pytest.raises(websockets.exceptions.InvalidStatus) as no_protocol:
        async with connect(served.url(), additional_headers=basic(CP, served.password)):
            pass
    assert no_protocol.value.response.status_code == 400
    for headers in ({}, basic(CP, "wrong"), basic("someone-else", served.password)):
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with connect(served.url(), subprotocols=["ocpp1.6"], additional_headers=headers):
                pass
        assert refused.value.response.status_code == 401
    with pytest.raises(websockets.exceptions.InvalidStatus) as unknown:  # a charge point nobody added
        async with connect(served.url("cp-nobody"), subprotocols=["ocpp1.6"],
                           additional_headers=basic("cp-nobody", served.password)):
            pass
    assert unknown.value.response.status_code == 401
    assert CP not in await devices(served.run) or not (await devices(served.run))[CP]["online"]


async def command(run: HubRun, op: str, headers: dict[str, str] | None = None, status: int = 200,
                  **args: Any) -> dict[str, Any]:
    response = await run.api.post(f"/api/devices/{run.site}/charger/{CP}/commands", json={"op": op, "args": args},
                                  headers=headers)
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_set_limit_and_stop_session_become_charging_profiles_and_remote_stops(served: Served) -> None:
    run = served.run
    async with charger(served) as cp:
        await cp.call(call.BootNotification(charge_point_model="AC7", charge_point_vendor="Acme"))
        # No session open: the limit becomes the default profile for the next sessions.
        assert (await command(run, "set_limit", limit_kw=7.4))["ok"] is True
        [(connector, profile)] = cp.profiles
        assert (connector, profile["charging_profile_purpose"]) == (0, "TxDefaultProfile")
        assert profile["charging_schedule"]["charging_schedule_period"] == [{"start_period": 0, "limit": 7400.0}]
        start = await cp.call(call.StartTransaction(connector_id=2, id_tag="tag-1", meter_start=0,
                                                    timestamp="2026-12-01T10:00:00Z"))
        cp.not_ready = 2  # the first two TxProfiles come too early: the hub sends the profile again
        assert (await command(run, "set_limit", limit_kw=3.33333))["ok"] is True
        assert len(cp.profiles) == 5 and cp.not_ready == 0
        # the default profile again, so the cap outlives this session (OCPP drops a TxProfile with it)
        assert [(c, p["charging_profile_purpose"], p["charging_profile_id"]) for c, p in cp.profiles[:2]] == [
            (0, "TxDefaultProfile", 999), (0, "TxDefaultProfile", 999)]
        assert float(cp.profiles[1][1]["charging_schedule"]["charging_schedule_period"][0]["limit"]) == 3333.3
        connector, profile = cp.profiles[-1]
        assert (connector, profile["charging_profile_purpose"], profile["transaction_id"]) == (
            2, "TxProfile", start.transaction_id)
        limit = profile["charging_schedule"]["charging_schedule_period"][0]["limit"]  # the library reads a Decimal
        assert float(limit) == 3333.3  # one decimal
        telemetry = {d["device"]: d for d in (await run.api.get("/api/devices")).json()}[CP]["telemetry"]
        assert (telemetry["connector"], telemetry["limit_kw"]) == (2, 3.3333)
        cp.refuse = True
        refused = await command(run, "set_limit", limit_kw=1.0)
        assert refused["ok"] is False and "Rejected" in refused["error"]

        assert (await command(run, "stop_session"))["ok"] is True
        assert cp.stopped == [start.transaction_id]
        bad = await command(run, "stop_session", session="S-not-a-number")
        assert bad["ok"] is False and "not an OCPP transaction id" in bad["error"]
    audit = (await run.api.get("/api/audit")).json()
    assert sum(1 for a in audit if a.get("action") == "device.command") >= 5


async def test_malformed_and_invalid_messages_get_call_errors_and_never_end_the_connection(served: Served) -> None:
    async with connect(served.url(), subprotocols=["ocpp1.6"], additional_headers=basic(CP, served.password)) as ws:
        async def ask(frame: str) -> list[Any]:
            await ws.send(frame)
            async with asyncio.timeout(5):
                return json.loads(await ws.recv())  # type: ignore[no-any-return]

        await ws.send("this is not JSON")  # nothing to answer to: no unique id
        await ws.send('{"not": "a list"}')
        assert (await ask('[2, "m1", "Heartbeat"]'))[:3] == [4, "m1", "ProtocolError"]  # no payload
        invalid = await ask('[2, "m2", "StatusNotification", {"connectorId": 1, "status": "Exploded"}]')
        assert invalid[:2] == [4, "m2"] and invalid[2] in {"FormationViolation", "OccurenceConstraintViolation",
                                                          "PropertyConstraintViolation", "TypeConstraintViolation"}
        unknown = await ask('[2, "m3", "MakeCoffee", {}]')
        assert unknown[:3] == [4, "m3", "NotImplemented"]
        # Out of order: a StopTransaction of a session never started is still stored and answered.
        stop = await ask('[2, "m4", "StopTransaction", {"meterStop": 10, "timestamp": "2026-12-01T10:00:00Z", '
                         '"transactionId": 424242}]')
        assert stop[:2] == [3, "m4"]
        answer = await ask('[2, "m5", "Heartbeat", {}]')
        assert answer[:2] == [3, "m5"] and "currentTime" in answer[2]


async def test_a_reconnect_replaces_the_old_connection_without_an_offline_between(served: Served) -> None:
    run = served.run
    async with charger(served) as first:
        await first.call(call.Heartbeat())
        async with charger(served) as second:
            assert (await second.call(call.Heartbeat())).current_time
            await asyncio.sleep(0.3)  # the old socket's close has been handled by now
            assert (await devices(run))[CP]["online"] is True
        await until(lambda: _offline(run), "offline once the current connection closes")


async def test_a_charger_whose_heartbeats_stop_goes_offline_while_still_connected(
        settings_for: Callable[..., Settings], mosquitto: Broker) -> None:
    async with running_hub(settings_for("embedded", heartbeat_s=2.0), mosquitto) as run:
        async with serving(run) as served:
            async with charger(served) as cp:
                boot = await cp.call(call.BootNotification(charge_point_model="AC7", charge_point_vendor="Acme"))
                assert boot.interval == 1  # a third of the 2 s window, at least 1 s
                assert (await devices(run))[CP]["online"] is True
                await until(lambda: _offline(run), "offline after the heartbeats stopped")
                await cp.call(call.Heartbeat())
                assert (await devices(run))[CP]["online"] is True  # heard again


async def test_a_session_that_outlives_a_hub_restart_stops_with_its_energy_and_duration(
        settings_for: Callable[..., Settings], mosquitto: Broker) -> None:
    settings = settings_for("embedded")
    async with running_hub(settings, mosquitto) as run, serving(run) as served, charger(served) as cp:
        start = await cp.call(call.StartTransaction(connector_id=1, id_tag="tag-9", meter_start=10_000,
                                                    timestamp="2026-12-01T10:00:00Z"))
        await run.stored()
    async with running_hub(settings, mosquitto) as run, serving(run) as served, charger(served) as cp:
        await cp.call(call.StopTransaction(meter_stop=22_500, timestamp="2026-12-01T11:30:00Z",
                                           transaction_id=start.transaction_id, reason="Local"))
        await run.stored()
        [stop] = await run.events(kind="charger", device=CP, type="session_stop")
        assert (stop["session"], stop["energy_kwh"], stop["duration_s"]) == (str(start.transaction_id), 12.5, 5400)


async def test_at_the_outbox_cap_meter_values_get_an_internal_error_and_are_taken_again_after(
        mosquitto: Broker, root: str, tmp_path: Path) -> None:
    """The embedded store's file locked, a 4 KiB outbox: past the cap the hub refuses (InternalError, so the
    charger sends again later) instead of growing the outbox; the store back, the same message is answered."""
    settings = hub_settings(mosquitto, root, tmp_path / "data", outbox_max_mb=4 / 1024)
    async with running_hub(settings, mosquitto) as run, serving(run) as served, charger(served) as cp:
        def reading(i: int) -> call.MeterValues:
            return call.MeterValues(connector_id=1, meter_value=[{"timestamp": f"2026-12-01T10:{i // 60:02d}:"
                                                                  f"{i % 60:02d}Z", "sampledValue": [
                {"value": str(1000 + i), "measurand": "Energy.Active.Import.Register"}]}])

        with locked(settings.data_dir / "store.db"):
            answered = 0
            with pytest.raises(InternalError):
                for i in range(400):
                    await cp.call(reading(i), suppress=False)
                    answered += 1
            assert 0 < answered < 400 and run.hub.outbox.fill >= 1.0
            depth = run.hub.outbox.depth
            with pytest.raises(InternalError):  # still held: nothing more is taken
                await cp.call(reading(answered), suppress=False)
            assert run.hub.outbox.depth == depth
        await eventually(lambda: run.hub.outbox.fill < 0.95, timeout=10, what="the outbox to drain")
        assert await cp.call(reading(answered), suppress=False) is not None


async def booted(cp: Obedient, **boot: Any) -> None:
    """BootNotification, then until the hub has read the charger's configuration (it asks after answering)."""
    await cp.call(call.BootNotification(charge_point_model="AC7", charge_point_vendor="Acme", **boot))
    await until(lambda: _true(bool(cp.config_reads)), "the hub's GetConfiguration after the boot")
    await asyncio.sleep(0.2)  # its answer taken in


async def _true(value: bool) -> bool:
    return value


async def test_a_charger_taking_amps_gets_a_dead_man_profile_per_phase_checked_by_its_composite_schedule(
        served: Served) -> None:
    run = served.run
    async with charger(served) as cp:
        cp.config["ChargingScheduleAllowedChargingRateUnit"] = "Current"
        await booted(cp)
        assert cp.config_reads == [["ChargingScheduleAllowedChargingRateUnit", "ConnectorPhaseRotation"]]
        start = await cp.call(call.StartTransaction(connector_id=1, id_tag="tag-1", meter_start=0,
                                                    timestamp="2026-12-01T10:00:00Z"))
        await cp.call(call.MeterValues(connector_id=1, transaction_id=start.transaction_id, meter_value=[{
            "timestamp": "2026-12-01T10:01:00Z", "sampledValue": [
                {"value": "16", "measurand": "Current.Import", "unit": "A", "phase": p} for p in ("L1", "L2", "L3")]}]))
        reply = await command(run, "set_limit", limit_kw=11.0, then_kw=4.2, after_s=900)
        assert reply["ok"] is True, reply
        assert reply["result"] == {"unit": "A", "phases": 3, "verified": True}
        connector, profile = cp.profiles[-1]
        schedule = profile["charging_schedule"]
        assert (connector, profile["charging_profile_purpose"], schedule["charging_rate_unit"]) == (1, "TxProfile", "A")
        assert profile["charging_profile_kind"] == "Absolute" and schedule["start_schedule"]  # the step counts from now
        assert [(p["start_period"], float(p["limit"]), p["number_phases"])
                for p in schedule["charging_schedule_period"]] == [(0, 15.9, 3), (900, 6.0, 3)]
        telemetry = (await devices(run))[CP]["telemetry"]
        assert telemetry["limit_kw"] == 10.971  # 15.9 A x 3 x 230 V: what the charger took

        cp.disobey = 32.0  # accepted, but the charger still schedules its maximum
        refused = await command(run, "set_limit", limit_kw=7.0)
        assert refused["ok"] is False and "GetCompositeSchedule" in refused["error"] and "32 A" in refused["error"]
        metrics = (await run.api.get("/metrics")).text
        assert "smarthub_ocpp_schedule_mismatches_total 1.0" in metrics and "smarthub_ocpp_connected 1.0" in metrics
        bad = await command(run, "set_limit", status=422, limit_kw=7.0, then_kw=1.0)
        assert "then_kw and after_s" in bad["detail"]


async def test_a_single_phase_charger_in_amps_and_a_unit_changed_by_configuration(served: Served) -> None:
    run = served.run
    async with charger(served) as cp:
        cp.config.update({"ChargingScheduleAllowedChargingRateUnit": "Current",
                          "ConnectorPhaseRotation": "0.NotApplicable,1.NotApplicable"})
        await booted(cp)
        reply = await command(run, "set_limit", limit_kw=7.4)  # no session: the default profile, not read back
        assert reply["result"] == {"unit": "A", "phases": 1, "verified": False}
        assert cp.profiles[-1][1]["charging_schedule"]["charging_schedule_period"] == [
            {"start_period": 0, "limit": Decimal("32.1"), "number_phases": 1}]  # the library reads a Decimal
        changed = await command(run, "change_configuration", key="ChargingScheduleAllowedChargingRateUnit",
                                value="Power")
        assert changed == {"id": changed["id"], "ok": True}
        await command(run, "set_limit", limit_kw=7.4)
        assert cp.profiles[-1][1]["charging_schedule"] == {
            "charging_rate_unit": "W", "charging_schedule_period": [{"start_period": 0, "limit": 7400.0}]}


async def test_operators_start_reset_reconfigure_and_read_a_charger_audited_and_by_role(served: Served) -> None:
    run = served.run
    operator = {"Authorization": f"Bearer {run.hub.users.add('张调度', 'operator')}"}
    async with charger(served) as cp:
        await booted(cp)
        assert (await command(run, "remote_start", headers=operator, id_tag="04A2B3C4", connector=2))["ok"] is True
        available = await command(run, "change_availability", headers=operator, available=False, connector=1)
        assert available["ok"] is True and available["result"] == {"status": "Scheduled"}
        for op, args in (("reset", {"hard": True}), ("change_configuration", {"key": "HeartbeatInterval",
                                                                            "value": "30"})):
            denied = await command(run, op, headers=operator, status=403, **args)
            assert "admin" in denied["detail"]
        assert (await command(run, "reset", hard=True))["ok"] is True  # the admin's token
        assert (await command(run, "change_configuration", key="HeartbeatInterval", value="30"))["ok"] is True
        unsupported = await command(run, "change_configuration", key="NoSuchKey", value="1")
        assert unsupported["ok"] is False and unsupported["error"] == "ChangeConfiguration: NotSupported"
        config = await command(run, "get_configuration", keys=["HeartbeatInterval", "Nope"])
        assert config["result"] == {"configuration": {"HeartbeatInterval": {"value": "30", "readonly": False}},
                                    "unknown": ["Nope"]}
        everything = await command(run, "get_configuration", headers=operator)
        assert set(everything["result"]["configuration"]) == set(cp.config)
        assert cp.calls == [
            ("RemoteStartTransaction", {"id_tag": "04A2B3C4", "connector_id": 2}),
            ("ChangeAvailability", {"connector_id": 1, "type": "Inoperative"}),
            ("Reset", {"type": "Hard"}),
            ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "30"}),
            ("ChangeConfiguration", {"key": "NoSuchKey", "value": "1"})]
    audit = [a for a in (await run.api.get("/api/audit")).json() if a.get("action") == "device.command"]
    outcomes = [(a["detail"]["op"], a["outcome"]) for a in audit]
    assert ("reset", "refused 403") in outcomes and ("reset", "ok") in outcomes
    assert ("change_configuration", "failed") in outcomes and ("remote_start", "ok") in outcomes
