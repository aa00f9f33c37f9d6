"""adapters/ocpp/mapping.py: OCPP 1.6 payloads (as the `ocpp` library hands them over) -> charger messages.

Every output is also validated by the charger kind's own models, so a mapping the hub would refuse fails here."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from ocpp.v16.enums import ChargePointErrorCode

from adapters.ocpp import mapping
from adapters.ocpp.mapping import Electrics, Message, OpenSession
from devices import REGISTRY
from hub.ingest.decode import decode

pytestmark = pytest.mark.unit

CHARGER = REGISTRY["charger"]
T0 = "2026-12-01T10:00:00Z"
T0_MS = 1_796_119_200_000


def valid(messages: list[Message]) -> list[Message]:
    """The messages, after checking the charger kind accepts each (the pipeline's own decode)."""
    for m in messages:
        decode(CHARGER, m.channel, orjson.dumps(m.payload))
    return messages


def sample(value: str, measurand: str | None = None, unit: str | None = None, **more: str) -> dict[str, Any]:
    out = {"value": value, **more}
    if measurand:
        out["measurand"] = measurand
    if unit:
        out["unit"] = unit
    return out


def telemetry(*samples: dict[str, Any], connector: int = 1, timestamp: str | None = T0) -> dict[str, Any]:
    [message] = valid(mapping.meter_values({"connector_id": connector,
                                            "meter_value": [{"timestamp": timestamp, "sampled_value": list(samples)}]}))
    assert message.channel == "telemetry"
    return message.payload


@pytest.mark.parametrize(("ocpp", "contract"), [
    ("EVCommunicationError", "ev_communication_error"), ("GroundFailure", "ground_failure"),
    ("SuspendedEVSE", "suspended_evse"), ("SuspendedEV", "suspended_ev"), ("EVDisconnected", "ev_disconnected"),
    ("PowerLoss", "power_loss"), ("Available", "available"),
])
def test_enumerations_in_snake_case(ocpp: str, contract: str) -> None:
    assert mapping.snake(ocpp) == contract


def test_every_ocpp_error_code_but_no_error_is_a_fault_the_charger_knows() -> None:
    codes = {c.value for c in ChargePointErrorCode} - {"NoError"}
    assert {mapping.fault_code(c) for c in codes} <= set(CHARGER.faults)
    assert {mapping.fault_code(c) for c in codes} - {"other_error"}, "all mapped to other_error: snake() broken"
    assert mapping.fault_code("SomethingNew") == "other_error"


def test_energy_and_power_in_either_unit_and_the_defaults() -> None:
    assert telemetry(sample("1532400"))["energy_kwh"] == 1532.4  # no measurand, no unit: the register in Wh
    assert telemetry(sample("1532.4", "Energy.Active.Import.Register", "kWh"))["energy_kwh"] == 1532.4
    assert telemetry(sample("6600", "Power.Active.Import"))["power_kw"] == 6.6
    assert telemetry(sample("6.6", "Power.Active.Import", "kW"))["power_kw"] == 6.6
    assert telemetry(sample("1"))["ts"] == T0_MS


def test_phases_sum_for_power_the_largest_for_current_the_mean_line_to_neutral_for_voltage() -> None:
    p = telemetry(
        sample("2300", "Power.Active.Import", "W", phase="L1"), sample("2200", "Power.Active.Import", "W", phase="L2"),
        sample("2100", "Power.Active.Import", "W", phase="L3"),
        sample("10", "Current.Import", "A", phase="L1"), sample("16", "Current.Import", "A", phase="L2"),
        sample("1", "Current.Import", "A", phase="N"),
        sample("229", "Voltage", "V", phase="L1-N"), sample("231", "Voltage", "V", phase="L2-N"),
        sample("400", "Voltage", "V", phase="L1-L2"),
    )
    assert (p["power_kw"], p["current_a"], p["voltage_v"]) == (6.6, 16.0, 230.0)
    # A total sent beside its phases is the figure.
    assert telemetry(sample("7000", "Power.Active.Import"), sample("2300", "Power.Active.Import", phase="L1"))[
        "power_kw"] == 7.0


def test_temperature_soc_and_what_the_contract_has_no_field_for() -> None:
    p = telemetry(sample("41.5", "Temperature", "Celsius"), sample("62", "SoC", "Percent"),
                  sample("50", "Frequency"), sample("3000", "Energy.Active.Export.Register"),
                  sample("32", "Current.Offered", "A"))
    assert p == {"connector": 1, "temperature_c": 41.5, "soc_pct": 62.0, "ts": T0_MS}
    assert telemetry(sample("212", "Temperature", "Fahrenheit"))["temperature_c"] == 100.0
    assert telemetry(sample("300.15", "Temperature", "K"))["temperature_c"] == 27.0


def test_values_that_are_no_numbers_are_left_out_not_refused() -> None:
    p = telemetry(sample("abc", "Power.Active.Import"), sample("nan", "Voltage"), sample("-0.0", "Power.Active.Import",
                  phase="L1"), sample("1000"), sample("xx", format="SignedData"))
    assert p == {"connector": 1, "power_kw": 0.0, "energy_kwh": 1.0, "ts": T0_MS}
    assert mapping.meter_values({"connector_id": 1, "meter_value": [{"timestamp": T0, "sampled_value": [
        sample("50", "Frequency")]}]}) == []


def test_one_message_per_meter_value_and_timestamps_without_offset_are_utc() -> None:
    messages = valid(mapping.meter_values({"connector_id": 2, "meter_value": [
        {"timestamp": "2026-12-01T10:00:00", "sampled_value": [sample("1000")]},
        {"timestamp": "2026-12-01T18:01:00+08:00", "sampled_value": [sample("2000")]},
        {"timestamp": "not a time", "sampled_value": [sample("3000")]},
    ]}))
    assert [(m.payload["connector"], m.payload["energy_kwh"], m.payload.get("ts")) for m in messages] == [
        (2, 1.0, T0_MS), (2, 2.0, T0_MS + 60_000), (2, 3.0, None)]


def status(connector: int, error: str, state: str = "Available", **more: str) -> dict[str, Any]:
    return {"connector_id": connector, "error_code": error, "status": state, **more}


def test_status_is_telemetry_and_an_error_code_raises_then_clears_its_fault() -> None:
    messages, raised = mapping.status_notification(status(1, "GroundFailure", "Faulted", timestamp=T0,
                                                          info="RCD tripped"), {})
    assert valid(messages) == messages
    assert messages[0] == Message("telemetry", {"connector": 1, "status": "faulted", "ts": T0_MS})
    assert messages[1].payload == {"type": "fault", "code": "ground_failure", "active": True,
                                   "detail": "connector 1; RCD tripped", "ts": T0_MS}
    assert raised == {1: "ground_failure"}
    messages, raised = mapping.status_notification(status(1, "NoError"), raised, ["ground_failure"])
    assert [m.payload for m in messages[1:]] == [{"type": "fault", "code": "ground_failure", "active": False}]
    assert raised == {}


def test_a_code_another_connector_still_holds_is_not_cleared() -> None:
    raised = {1: "over_voltage", 2: "over_voltage"}
    messages, raised = mapping.status_notification(status(1, "NoError"), raised, ["over_voltage"])
    assert [m.channel for m in messages] == ["telemetry"] and raised == {2: "over_voltage"}
    messages, raised = mapping.status_notification(status(2, "NoError"), raised, ["over_voltage"])
    assert [m.payload["code"] for m in messages[1:]] == ["over_voltage"]


def test_a_changed_code_clears_the_old_one_and_an_unknown_code_is_other_error_with_what_was_said() -> None:
    _, raised = mapping.status_notification(status(1, "HighTemperature", "Faulted"), {})
    messages, raised = mapping.status_notification(
        status(1, "BrandNewError", "Faulted", vendor_id="acme", vendor_error_code="E42"), raised)
    assert [(m.payload["code"], m.payload["active"]) for m in messages[1:]] == [
        ("high_temperature", False), ("other_error", True)]
    assert messages[2].payload["detail"] == "connector 1; BrandNewError; acme E42"


def test_faults_open_from_before_a_restart_are_cleared_by_no_error() -> None:
    messages, _ = mapping.status_notification(status(1, "NoError"), {}, ["reader_failure"])
    assert [(m.payload["code"], m.payload["active"]) for m in messages[1:]] == [("reader_failure", False)]


def test_a_session_start_and_stop_with_energy_and_duration() -> None:
    start = {"connector_id": 1, "id_tag": "04A2B3C4D5", "meter_start": 1_532_400, "timestamp": T0}
    messages, session = mapping.start_transaction(start, 9317)
    assert valid(messages)[0].payload == {"type": "session_start", "id": "tx-9317-start", "session": "9317",
                                          "connector": 1, "id_tag": "04A2B3C4D5", "meter_start_kwh": 1532.4,
                                          "ts": T0_MS}
    assert session == OpenSession(1, 1_532_400, T0_MS)
    stop = {"transaction_id": 9317, "meter_stop": 1_550_600, "timestamp": "2026-12-01T12:44:00Z",
            "reason": "EVDisconnected"}
    [message] = valid(mapping.stop_transaction(stop, session))
    assert message.payload == {"type": "session_stop", "id": "tx-9317-stop", "session": "9317", "energy_kwh": 18.2,
                               "duration_s": 9840.0, "reason": "ev_disconnected", "ts": T0_MS + 9_840_000}
    [default] = mapping.stop_transaction({**stop, "reason": None}, session)
    assert default.payload["reason"] == "local"  # OCPP's default Reason


def test_a_stop_whose_start_the_hub_missed_reads_it_from_transaction_data_else_counts_zero() -> None:
    stop = {"transaction_id": 5, "meter_stop": 12_000, "timestamp": "2026-12-01T11:00:00Z", "transaction_data": [
        {"timestamp": T0, "sampled_value": [sample("10000", context="Transaction.Begin")]},
        {"timestamp": "2026-12-01T11:00:00Z", "sampled_value": [sample("12000", context="Transaction.End")]}]}
    [message] = valid(mapping.stop_transaction(stop, None))
    assert (message.payload["energy_kwh"], message.payload["duration_s"]) == (2.0, 3600.0)
    [blind] = valid(mapping.stop_transaction({**stop, "transaction_data": None}, None))
    assert (blind.payload["energy_kwh"], blind.payload["duration_s"]) == (0.0, 0.0)


def test_boot_heartbeat_and_offline_are_the_state_channel() -> None:
    [boot] = valid(mapping.boot_notification({"charge_point_vendor": "Acme", "charge_point_model": "AC7",
                                              "firmware_version": "1.2.3"}))
    assert boot == Message("state", {"online": True, "model": "Acme AC7", "fw": "1.2.3"})
    assert valid(mapping.heartbeat()) == [Message("state", {"online": True})]
    assert valid([mapping.offline()]) == [Message("state", {"online": False})]


def test_set_limit_is_shared_by_the_open_sessions_or_the_default_for_the_next() -> None:
    [(connector, default)] = mapping.set_limit(7.4, {})
    assert (connector, default["charging_profile_purpose"], default["charging_profile_id"]) == (
        0, "TxDefaultProfile", mapping.DEFAULT_PROFILE_ID)
    sessions = {12: OpenSession(2, 0, None), 11: OpenSession(1, 0, None)}
    default, *profiles = mapping.set_limit(10.0, sessions)
    assert [(c, p["transaction_id"], p["charging_profile_id"], p["charging_schedule"]["charging_schedule_period"])
            for c, p in profiles] == [(1, 11, 1001, [{"start_period": 0, "limit": 5000.0}]),
                                      (2, 12, 1002, [{"start_period": 0, "limit": 5000.0}])]
    # the default too, first: OCPP drops a TxProfile with its transaction, the next car must start under the cap
    assert (default[0], default[1]["charging_profile_purpose"], default[1]["charging_profile_id"],
            "transaction_id" in default[1], default[1]["charging_schedule"]["charging_schedule_period"]) == (
        0, "TxDefaultProfile", mapping.DEFAULT_PROFILE_ID, False, [{"start_period": 0, "limit": 10000.0}])
    assert mapping.set_limit(1.0, {1: OpenSession(1, 0, None), 2: OpenSession(2, 0, None), 3: OpenSession(3, 0, None)}
                             )[1][1]["charging_schedule"]["charging_schedule_period"][0]["limit"] == 333.3


def test_stop_session_names_its_transaction_or_says_why_not() -> None:
    one = {7: OpenSession(1, 0, None)}
    assert mapping.stop_session(None, one) == 7
    assert mapping.stop_session("9317", {}) == 9317
    assert "not an OCPP transaction id" in str(mapping.stop_session("S-1", one))
    assert mapping.stop_session(None, {}) == "no session is open"
    assert "several" in str(mapping.stop_session(None, {**one, 8: OpenSession(2, 0, None)}))


def test_a_stored_session_start_is_a_session_start_again() -> None:
    row = {"time": T0_MS, "kind": "charger", "session": "7", "connector": 2, "meter_start_kwh": 1.5}
    assert mapping.session_from_event(row) == OpenSession(2, 1500.0, T0_MS)
    assert mapping.session_from_event({"time": T0_MS, "session": "7"}) is None


def test_a_dead_man_step_is_a_second_period_and_amps_are_per_phase_from_kw() -> None:
    [(_, default), (connector, profile)] = mapping.set_limit(11.0, {5: OpenSession(1, 0, None)}, Electrics("A", 3),
                                                             then_kw=4.2, after_s=900, now="2026-12-01T10:00:00Z")
    # the default that outlives the session keeps the dead-man step: a hub that died leaves the next car safe too
    assert {k: v for k, v in default.items() if k not in ("charging_profile_id", "charging_profile_purpose")} == {
        k: v for k, v in profile.items() if k not in ("charging_profile_id", "charging_profile_purpose",
                                                      "transaction_id")}
    schedule = profile["charging_schedule"]
    assert (connector, schedule["charging_rate_unit"]) == (1, "A")
    # from now, not from the session's start (Relative): the step must come after_s from this command
    assert (profile["charging_profile_kind"], schedule["start_schedule"]) == ("Absolute", "2026-12-01T10:00:00Z")
    assert schedule["charging_schedule_period"] == [
        {"start_period": 0, "limit": 15.9, "number_phases": 3},  # 11 kW / (3 x 230 V) = 15.94 A, rounded down
        {"start_period": 900, "limit": 6.0, "number_phases": 3}]  # 4.2 kW / 690 V = 6.087 A
    [(_, single)] = mapping.set_limit(7.4, {}, Electrics("A", 1))
    assert single["charging_schedule"]["charging_schedule_period"] == [
        {"start_period": 0, "limit": 32.1, "number_phases": 1}]
    assert single["charging_profile_kind"] == "Relative" and "start_schedule" not in single["charging_schedule"]
    with pytest.raises(ValueError):
        mapping.set_limit(7.0, {}, then_kw=1.4, after_s=900)  # no clock
    watts = mapping.set_limit(7.0, {}, Electrics("W", 1), then_kw=1.4, after_s=900, now="2026-12-01T10:00:00Z")[0][1]
    assert watts["charging_schedule"]["charging_schedule_period"] == [{"start_period": 0, "limit": 7000.0},
                                                                      {"start_period": 900, "limit": 1400.0}]
    assert mapping.rate_kw(15.9, Electrics("A", 3)) == 10.971 and mapping.rate_kw(7000.0, Electrics()) == 7.0


def test_the_configuration_says_the_unit_and_a_single_phase_supply() -> None:
    def answer(unit: str, rotation: str | None = None) -> dict[str, Any]:
        keys = [{"key": mapping.RATE_UNIT_KEY, "readonly": True, "value": unit}]
        if rotation is not None:
            keys.append({"key": mapping.PHASE_ROTATION_KEY, "readonly": False, "value": rotation})
        return {"configuration_key": keys}

    assert mapping.configured(answer("Current"), Electrics()) == Electrics("A", 3)
    assert mapping.configured(answer("Current,Power"), Electrics("A")) == Electrics("W", 3)  # W needs no phases
    assert mapping.configured(answer("Current", "0.NotApplicable,1.NotApplicable"), Electrics()).phases == 1
    assert mapping.configured(answer("Current", "1.RST"), Electrics("A", 1)).phases == 3
    assert mapping.configured(answer("Current", "1.Unknown"), Electrics("A", 1)).phases == 1  # unchanged
    assert mapping.configured(None, Electrics("A", 1)) == Electrics("A", 1)
    assert mapping.configured({"configuration_key": [], "unknown_key": [mapping.RATE_UNIT_KEY]},
                              Electrics()) == Electrics()


def test_meter_values_phases_say_one_or_three() -> None:
    def values(*phases: str, measurand: str = "Current.Import") -> dict[str, Any]:
        return {"connector_id": 1, "meter_value": [{"sampled_value": [
            {"value": "10", "measurand": measurand, "phase": p} for p in phases]}]}

    assert mapping.phases_seen(values("L1")) == 1
    assert mapping.phases_seen(values("L1", "L2", "L3")) == 3
    assert mapping.phases_seen(values("L2-N", measurand="Power.Active.Import")) == 3
    assert mapping.phases_seen(values("L1-N", measurand="Voltage")) is None  # voltage shows the supply, not the car
    assert mapping.phases_seen({"connector_id": 1, "meter_value": []}) is None


def test_a_composite_schedule_higher_than_sent_or_missing_is_a_mismatch() -> None:
    def composite(limit: float, unit: str = "A", status: str = "Accepted") -> dict[str, Any]:
        return {"status": status, "charging_schedule": {"charging_rate_unit": unit, "charging_schedule_period": [
            {"start_period": 0, "limit": limit}, {"start_period": 900, "limit": 6.0}]}}

    assert mapping.schedule_mismatch(composite(16.0), 16.0, "A") is None
    assert mapping.schedule_mismatch(composite(10.0), 16.0, "A") is None  # the charger's own maximum is lower
    assert "32 A, not the 16 A" in str(mapping.schedule_mismatch(composite(32.0), 16.0, "A"))
    assert "in W" in str(mapping.schedule_mismatch(composite(7000.0, "W"), 16.0, "A"))
    assert "Rejected" in str(mapping.schedule_mismatch(composite(16.0, status="Rejected"), 16.0, "A"))
    assert mapping.schedule_mismatch(None, 16.0, "A") is not None


def test_operator_ops_become_their_ocpp_calls_and_answers_their_replies() -> None:
    assert mapping.operator_request("remote_start", {"id_tag": "t1"}) == ("RemoteStartTransaction", {"id_tag": "t1"})
    assert mapping.operator_request("remote_start", {"id_tag": "t1", "connector": 2})[1]["connector_id"] == 2
    assert mapping.operator_request("change_availability", {"available": False}) == (
        "ChangeAvailability", {"connector_id": 0, "type": "Inoperative"})
    assert mapping.operator_request("reset", {}) == ("Reset", {"type": "Soft"})
    assert mapping.operator_request("reset", {"hard": True}) == ("Reset", {"type": "Hard"})
    assert mapping.operator_request("get_configuration", {}) == ("GetConfiguration", {})
    assert mapping.operator_request("get_configuration", {"keys": ["A"]}) == ("GetConfiguration", {"key": ["A"]})
    assert mapping.operator_request("change_configuration", {"key": "K", "value": "1"}) == (
        "ChangeConfiguration", {"key": "K", "value": "1"})
    with pytest.raises(ValueError):
        mapping.operator_request("set_limit", {})
    assert mapping.operator_reply("Reset", {"status": "Accepted"}) == (True, None, None)
    assert mapping.operator_reply("ChangeAvailability", {"status": "Scheduled"}) == (True, None,
                                                                                     {"status": "Scheduled"})
    assert mapping.operator_reply("ChangeConfiguration", {"status": "NotSupported"}) == (
        False, "ChangeConfiguration: NotSupported", None)
    config = mapping.operator_reply("GetConfiguration", {"configuration_key": [{"key": "K", "readonly": True,
                                                                                "value": "1"}],
                                                         "unknown_key": ["X"]})
    assert config == (True, None, {"configuration": {"K": {"value": "1", "readonly": True}}, "unknown": ["X"]})


def test_set_limit_args_take_the_dead_man_pair_together_or_not_at_all() -> None:
    model = REGISTRY["charger"].commands["set_limit"]
    assert model.model_validate({"limit_kw": 7, "then_kw": 1.4, "after_s": 900}).after_s == 900
    for bad in ({"limit_kw": 7, "then_kw": 1.4}, {"limit_kw": 7, "after_s": 900},
                {"limit_kw": 7, "then_kw": 1, "after_s": 0}):
        with pytest.raises(ValueError):
            model.model_validate(bad)
    assert REGISTRY["charger"].command_role("reset") == "admin"
    assert REGISTRY["charger"].command_role("change_configuration") == "admin"
    assert REGISTRY["charger"].command_role("remote_start") == "operator"
