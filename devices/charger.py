"""EV chargers (充电桩) sharing a small transformer ("orderly charging", 有序充电).

Statuses and error codes follow OCPP 1.6 (ChargePointStatus, ChargePointErrorCode)
in snake case, so an OCPP gateway maps one to one. `id_tag` identifies a person.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from devices import charging_control
from devices.base import (
    Accepted,
    CommandArgs,
    DeviceKind,
    DevicePayload,
    DistrictGauge,
    EventPayload,
    FaultSpec,
    Gauge,
    KindSettings,
    LiveDevice,
    OverviewSection,
    Severity,
    SumOfMeans,
    TodayFigure,
)
from devices.rules import Clear, Intent, Raise

Status = Literal[
    "available", "preparing", "charging", "suspended_ev", "suspended_evse", "finishing", "reserved",
    "unavailable", "faulted",
]


class Telemetry(DevicePayload):
    """Periodic meter and status of one connector; every field but `connector` optional."""

    connector: int = Field(1, ge=0, description="Connector number; 0 means the whole charge point")
    status: Status | None = None
    power_kw: float | None = Field(None, ge=0)
    energy_kwh: float | None = Field(None, ge=0, description="Cumulative meter")
    voltage_v: float | None = Field(None, ge=0)
    current_a: float | None = Field(None, ge=0)
    temperature_c: float | None = None
    limit_kw: float | None = Field(None, ge=0, description="Current power cap")
    soc_pct: float | None = Field(None, ge=0, le=100, description="The car's state of charge, if the charger knows")


class SessionStart(EventPayload):
    """A charging session began (OCPP StartTransaction)."""

    type: Literal["session_start"]
    # OCPP's transactionId is an integer: kept as text, so the stored field keeps one type.
    session: str = Field(min_length=1, max_length=128, coerce_numbers_to_str=True)
    connector: int = Field(ge=0)
    id_tag: str = Field(min_length=1, max_length=128, coerce_numbers_to_str=True, description="Opaque RFID / app id")
    meter_start_kwh: float = Field(ge=0)


class SessionStop(EventPayload):
    """A charging session ended (OCPP StopTransaction)."""

    type: Literal["session_stop"]
    session: str = Field(min_length=1, max_length=128, coerce_numbers_to_str=True)
    energy_kwh: float = Field(ge=0, description="Energy delivered in the session")
    duration_s: float = Field(ge=0)
    reason: str = Field(min_length=1, max_length=64, description="e.g. OCPP's Reason in snake case: ev_disconnected")


class SetLimit(CommandArgs):
    """A power cap; with `then_kw` and `after_s` a dead-man step: after `after_s` seconds the cap falls to
    `then_kw` on the charger's own clock unless a newer set_limit replaced it, so a hub that dies leaves its
    chargers at a safe share (OCPP: a two-period schedule)."""

    limit_kw: float = Field(ge=0)
    then_kw: float | None = Field(None, ge=0, description="The cap after `after_s` seconds")
    after_s: int | None = Field(None, gt=0, le=86_400, description="Seconds until the cap falls to `then_kw`")

    @model_validator(mode="after")
    def _both_or_neither(self) -> SetLimit:
        if (self.then_kw is None) != (self.after_s is None):
            raise ValueError("then_kw and after_s go together")
        return self


class StopSession(CommandArgs):
    session: str | None = Field(None, min_length=1, max_length=128, coerce_numbers_to_str=True)


# Operators' ops (project extension): carried over OCPP only; an MQTT charger answers them ok: false.
class RemoteStart(CommandArgs):
    id_tag: str = Field(min_length=1, max_length=20, description="The tag to start for (OCPP's idToken: 20)")
    connector: int | None = Field(None, ge=1, description="Left out: the charger chooses")


class ChangeAvailability(CommandArgs):
    available: bool
    connector: int = Field(0, ge=0, description="0: the whole charge point")


class Reset(CommandArgs):
    hard: bool = Field(False, description="A hard reset (power cycle) rather than a soft one")


class GetConfiguration(CommandArgs):
    keys: list[Annotated[str, Field(min_length=1, max_length=50)]] | None = Field(
        None, max_length=100, description="Left out: every key")


class ChangeConfiguration(CommandArgs):
    key: str = Field(min_length=1, max_length=50)
    value: str = Field(max_length=500)


M, m, C = Severity.MAJOR, Severity.MINOR, Severity.CRITICAL
FAULTS = {
    "connector_lock_failure": FaultSpec(m, "枪锁故障", "Connector lock failure"),
    "ev_communication_error": FaultSpec(m, "车桩通信故障", "EV communication error"),
    "ground_failure": FaultSpec(C, "接地故障", "Ground failure"),
    "high_temperature": FaultSpec(C, "温度过高", "High temperature"),
    "internal_error": FaultSpec(M, "内部错误", "Internal error"),
    "local_list_conflict": FaultSpec(m, "本地授权列表冲突", "Local list conflict"),
    "other_error": FaultSpec(m, "其他故障", "Other error"),
    "over_current_failure": FaultSpec(M, "过流", "Over-current failure"),
    "over_voltage": FaultSpec(M, "过压", "Over-voltage"),
    "power_meter_failure": FaultSpec(M, "电表故障", "Power meter failure"),
    "power_switch_failure": FaultSpec(M, "功率开关故障", "Power switch failure"),
    "reader_failure": FaultSpec(m, "读卡器故障", "Reader failure"),
    "reset_failure": FaultSpec(m, "复位失败", "Reset failure"),
    "under_voltage": FaultSpec(M, "欠压", "Under-voltage"),
    "weak_signal": FaultSpec(m, "信号弱", "Weak signal"),
}

DERIVED = {
    charging_control.OVER_CAP: FaultSpec(M, "充电负荷超出可用容量", "Chargers draw above the site's headroom: "
                                         "a charger not obeying its limit"),
    charging_control.PAUSED_LONG: FaultSpec(m, "车辆暂停充电过久", "A car paused past the starvation bound"),
}


class Settings(KindSettings):
    charger_max_c: float = Field(70.0, description="Charger temperature that raises high_temperature")
    charging_period_s: float = Field(30.0, gt=0, description="Orderly charging reallocates at least this often")
    charging_debounce_s: float = Field(1.0, ge=0, description="A charger's change is reallocated this much later, "
                                       "with whatever else changed meanwhile")
    charging_renew_s: float = Field(300.0, gt=0, description="A limit unchanged this long is sent again")
    charging_over_cap_s: float = Field(60.0, ge=0, description="Chargers drawing above the headroom this long "
                                       "raise charging_over_cap")
    charging_starve_after_s: float = Field(1800.0, gt=0, description="The allocator serves first a car paused "
                                           "this long; one still paused raises charging_paused_long")


_CLEAR_HIGH_TEMPERATURE = (Clear("high_temperature"),)


def charger_temperature(msg: Accepted, telemetry: Mapping[str, Any], memory: dict[str, Any], now_ms: int,
                        t: Settings) -> Iterable[Intent]:
    temperature = telemetry.get("temperature_c") if msg.channel == "telemetry" else None
    if temperature is None:
        return ()
    if temperature > t.charger_max_c:
        return (Raise("high_temperature", f"{temperature:.1f} °C (limit {t.charger_max_c:.0f} °C)"),)
    if temperature < t.charger_max_c - 5:  # hysteresis: no flapping around the limit
        return _CLEAR_HIGH_TEMPERATURE
    return ()


def charging(devices: Sequence[LiveDevice], sites: Sequence[Any]) -> dict[str, Any]:
    """Chargers charging and their power now, against the sites' transformer capacity (None: none declared)."""
    kw = 0.0
    busy = 0
    for d in devices:  # summed in registry order, so the floats come out as they always have
        if d.online:
            busy += d.telemetry.get("status") == "charging"
            kw += d.telemetry.get("power_kw") or 0.0
    caps = [s.power_cap_kw for s in sites if getattr(s, "power_cap_kw", None) is not None]
    return {"total": len(devices), "charging": busy, "kw": round(kw, 2),
            "cap_kw": round(sum(caps), 2) if caps else None}


OVER_CAP_STRAIN_AT = 0.2
"""Drawing this share above the cap is as bad as the district wall's charging gauge gets."""


def load_against_cap(figures: Mapping[str, Any], controller: Any, site: str) -> Gauge | None:
    """The district wall's charging load: what the chargers draw now against the headroom the orderly-charging
    allocator last had for them (`ChargingControl.load`: capacity less the base load); before its first round,
    against the declared `power_cap_kw` (the overview's `cap_kw`). Filling the headroom is what the allocator is
    for, so the strain is 0 up to the cap and rises to 1 at `OVER_CAP_STRAIN_AT` above it (a charger not
    obeying). A site that declares no capacity has a load and nothing to hold it against."""
    if not figures.get("total"):
        return None
    load = controller.load(site) if controller is not None else None
    drawn, cap = load if load is not None else (figures["kw"], figures["cap_kw"])
    if cap is None:
        return Gauge(round(drawn, 2), None, None, 0.0)
    share = drawn / cap if cap > 0 else (0.0 if drawn <= 0 else 1 + OVER_CAP_STRAIN_AT)
    strain = min(1.0, max(0.0, (share - 1) / OVER_CAP_STRAIN_AT))
    return Gauge(round(drawn, 2), round(cap, 2), round(share, 4), round(strain, 4))


KIND = DeviceKind(
    name="charger",
    rules=(charger_temperature,),
    derived=DERIVED,
    # about how a site's power is shared (a car waiting, some charger not obeying), not a broken charger
    not_failures=frozenset({charging_control.OVER_CAP, charging_control.PAUSED_LONG}),
    controllers=(charging_control.ChargingControl,),
    zh="充电桩",
    en="EV charger",
    telemetry=Telemetry,
    events=(SessionStart, SessionStop),
    faults=FAULTS,
    commands={"set_limit": SetLimit, "stop_session": StopSession, "remote_start": RemoteStart,
              "change_availability": ChangeAvailability, "reset": Reset, "get_configuration": GetConfiguration,
              "change_configuration": ChangeConfiguration},
    command_roles={"reset": "admin", "change_configuration": "admin"},  # rebooting or reconfiguring a pile
    personal=("id_tag",),
    settings=Settings,
    team="electrical",
    overview=OverviewSection("chargers", live=charging,
                             today={"kwh_today": TodayFigure("sum", "energy_kwh", {"type": "session_stop"}, digits=2)}),
    district=DistrictGauge("charging_load", "充电负荷", "Charging load", load_against_cap, unit="kW"),
    series={"charging_power": SumOfMeans("power_kw", count_key="chargers", value_key="kw")},
    examples={
        "telemetry": (
            {"connector": 1, "status": "charging", "power_kw": 6.6, "energy_kwh": 1532.4, "voltage_v": 228.5,
             "current_a": 28.9, "temperature_c": 41.5, "limit_kw": 7.0},
            {"status": "available", "power_kw": 0, "energy_kwh": 1540.1, "ts": "2026-11-22T23:00:00+08:00",
             "seq": 4410},
            {"connector": 2, "status": "suspended_evse", "power_kw": 0, "limit_kw": 0, "seq": 4411},
            {"status": "faulted", "temperature_c": 83.0, "ts": 1_795_359_600_000},
        ),
        "event": (
            {"type": "session_start", "id": "s-1", "session": "S20261122-0042", "connector": 1,
             "id_tag": "tag-88a1", "meter_start_kwh": 1532.4},
            {"type": "session_stop", "id": "s-2", "session": "S20261122-0042", "energy_kwh": 18.2,
             "duration_s": 9840, "reason": "ev_disconnected"},
            {"type": "session_start", "id": "s-3", "session": 9317, "connector": 2, "id_tag": "04A2B3C4D5",
             "meter_start_kwh": 877.0, "seq": 311},
            {"type": "session_stop", "id": "s-4", "session": 9317, "energy_kwh": 0.4, "duration_s": 95.5,
             "reason": "remote"},
            {"type": "fault", "id": "f-1", "code": "high_temperature", "active": True, "detail": "82 C at plug"},
            {"type": "fault", "id": "f-2", "code": "high_temperature", "active": False},
            {"type": "fault", "id": "f-3", "code": "ground_failure", "active": True},
        ),
    },
)
