"""The orderly-charging controller's pure parts: what it learns from chargers, what it sends, when it alerts."""

from __future__ import annotations

import pytest

from devices.base import Accepted
from devices.charger import KIND
from devices.charging import Connector, Limit, Reason, allocate
from devices.charging_control import (
    ChargerInput,
    ChargerSeen,
    Plan,
    deadman_kw,
    over_cap,
    reserve,
    site_inputs,
    starved,
    to_send,
    view,
    worst_offender,
)
from hub.registry import Site as SiteConfig

pytestmark = pytest.mark.unit

MIN = 60_000


def message(channel: str, payload: dict[str, object], device: str = "c1") -> Accepted:
    model = KIND.telemetry.model_validate(payload) if channel == "telemetry" else KIND.validate_event(payload)
    return Accepted("sunshine", "charger", device, channel, model, 0, 0, 0)


def charging(device: str, online: bool = True, **extra: object) -> ChargerInput:
    seen = ChargerSeen()
    seen.fold(message("telemetry", {"status": "charging", "power_kw": 3.0}, device))
    return ChargerInput(device, online, seen, **extra)  # type: ignore[arg-type]


def test_a_charger_seen_keeps_each_connector_and_its_sessions_but_no_id_tag() -> None:
    seen = ChargerSeen()
    assert seen.fold(message("telemetry", {"connector": 1, "status": "charging", "power_kw": 3.5, "energy_kwh": 12.0}))
    assert seen.fold(message("telemetry", {"connector": 2, "status": "available", "power_kw": 0}))
    assert seen.fold(message("event", {"type": "session_start", "id": "e1", "session": "S1", "connector": 1,
                                       "id_tag": "tag-secret", "meter_start_kwh": 10.0}))
    assert seen.occupied and seen.power_kw == 3.5
    assert seen.progress() == {"soc_pct": None, "session_kwh": 2.0, "power_kw": 3.5, "status": "available,charging"}
    assert "tag-secret" not in repr(seen)
    assert seen.fold(message("event", {"type": "session_stop", "id": "e2", "session": "S1", "energy_kwh": 2.0,
                                       "duration_s": 60, "reason": "local"}))
    assert not seen.fold(message("event", {"type": "session_stop", "id": "e3", "session": "S9", "energy_kwh": 0,
                                           "duration_s": 1, "reason": "local"}))  # unknown: nothing changes
    assert seen.occupied  # connector 1 still says charging
    seen.fold(message("telemetry", {"connector": 1, "status": "finishing", "power_kw": 0}))
    assert not seen.occupied


def test_site_inputs_measured_base_load_wins_and_offline_chargers_get_no_car() -> None:
    config = SiteConfig(transformer_kva=100, power_factor=0.9, margin_pct=10, base_load_kw=30, off_peak=[(22, 8)])
    site, connectors, sessions = site_inputs(config, 12.5, [charging("c2", max_current_a=16, phases=3, priority=1),
                                                            charging("c1", online=False)], 60 * MIN)
    assert (round(site.capacity_kw, 6), site.base_load_kw, site.off_peak[0].start_h) == (81.0, 12.5, 22)
    assert [(c.id, c.max_current_a, c.phases, c.priority, c.rate_unit) for c in connectors] == [
        ("c1", 32.0, 1, 0, "W"), ("c2", 16, 3, 1, "W")]
    assert [s.connector for s in sessions] == ["c2"]
    assert site_inputs(config, None, [], MIN)[0].base_load_kw == 30  # no meter heard: the configured one


def test_to_send_cuts_first_skips_small_moves_and_offline_chargers_and_renews() -> None:
    config = SiteConfig(power_cap_kw=10)
    site, connectors, sessions = site_inputs(config, None, [charging("a"), charging("b"), charging("c")], 30 * MIN)
    allocation = allocate(site, connectors, sessions, 0)
    limits = {lim.connector: round(lim.power_kw, 1) for lim in allocation.limits}
    assert sum(limits.values()) <= site.headroom_kw
    sent = {"a": (limits["a"] + 3, 0), "b": (limits["b"] - 1, 0), "c": (limits["c"] - 0.05, 0)}
    assert to_send(allocation, sent, ["a", "b", "c"], 1000, 300_000) == [("a", limits["a"]), ("b", limits["b"])]
    # A cut goes out however small: skipped, the limits out there would add up above the headroom.
    assert to_send(allocation, {**sent, "c": (limits["c"] + 0.05, 0)}, ["c"], 1000, 300_000) == [("c", limits["c"])]
    assert to_send(allocation, sent, ["b", "c"], 1000, 300_000) == [("b", limits["b"])]
    assert [d for d, _ in to_send(allocation, sent, ["a", "b", "c"], 300_000, 300_000)] == ["a", "b", "c"]  # a cut
    assert [d for d, _ in to_send(allocation, {}, ["a", "b", "c"], 0, 300_000)] == ["a", "b", "c"]


def test_over_cap_counts_from_the_first_moment_above_and_forgets_below() -> None:
    assert over_cap(10.0, 10.0, None, 0, 60_000) == (None, False)  # at the headroom: fine
    assert over_cap(10.1, 10.0, None, 0, 60_000) == (None, False)  # within the meters' tolerance
    assert over_cap(12.0, 10.0, None, 5, 60_000) == (5, False)
    assert over_cap(12.0, 10.0, 5, 60_004, 60_000) == (5, False)
    assert over_cap(12.0, 10.0, 5, 60_005, 60_000) == (5, True)
    assert over_cap(9.0, 10.0, 5, 70_000, 60_000) == (None, False)
    assert worst_offender({"a": 5.0, "b": 9.0, "c": 7.0}, {"a": 5.0, "b": 9.0, "c": 3.0}) == "c"


def test_a_car_still_paused_past_the_starvation_bound_is_starved() -> None:
    config = SiteConfig(power_cap_kw=1.0)  # below one car's 6 A minimum: nobody can charge
    site, connectors, sessions = site_inputs(config, None, [charging("a")], 30 * MIN)
    first = allocate(site, connectors, sessions, 0)
    assert first.limits[0].state == "paused" and starved(first, 30 * MIN) == set()
    later = allocate(site, connectors, sessions, 30 * MIN, previous=first)
    assert starved(later, 30 * MIN) == {"a"}
    roomy = site_inputs(SiteConfig(power_cap_kw=10.0), None, [charging("a")], 30 * MIN)
    assert starved(allocate(*roomy, 30 * MIN, previous=later), 30 * MIN) == set()  # served first, so admitted


def test_the_view_gives_each_charger_its_limit_reason_and_progress() -> None:
    chargers = {c.device: c for c in (charging("a"), charging("b", online=False))}
    site, connectors, sessions = site_inputs(SiteConfig(power_cap_kw=7.0, base_load_kw=2.0), None,
                                             list(chargers.values()), 30 * MIN)
    out = view("sunshine", allocate(site, connectors, sessions, 0), False, chargers, {"a": (1.3, 0)})
    assert (out.capacity_kw, out.base_load_kw, out.headroom_kw, out.measured_kw) == (7.0, 2.0, 5.0, 3.0)
    a, b = out.connectors
    assert (a.device, a.state, a.sent_kw, a.reason.code, a.power_kw) == ("a", "admitted", 1.3, "ramping", 3.0)
    assert (b.state, b.reason.code, b.reason.zh, b.online, b.sent_kw) == ("idle", "no_car", "无车", False, None)


def test_an_offline_charger_keeps_its_last_limit_out_of_the_headroom_for_a_while() -> None:
    sent = {"a": (5.0, 0), "b": (3.0, 0), "c": (0.0, 0)}
    kept = reserve(sent, {}, ["a"], 1000, 60_000)
    assert kept == {"b": (3.0, 1000)} and sent == {"a": (5.0, 0)}  # c was at 0: nothing to keep
    assert reserve(sent, kept, ["a"], 60_999, 60_000) == kept
    assert reserve(sent, kept, ["a"], 61_000, 60_000) == {}  # as long as a dead-man profile would hold it
    assert reserve(sent, kept, ["a", "b"], 2000, 60_000) == {}  # back: steered again (and sent anew)
    site, _, _ = site_inputs(SiteConfig(power_cap_kw=10, base_load_kw=2), None, [], MIN, reserved_kw=3.0)
    assert site.headroom_kw == 5.0


def test_the_dead_man_step_is_the_safe_share_or_nothing_below_the_minimum() -> None:
    """set_limit's then_kw: the lower of the limit and the safe share, rounded down; 0 when that share cannot
    carry a car at 6 A (a paused car stays paused should the hub die)."""
    pile = Connector("c1", max_current_a=32, phases=1, voltage_v=230, rate_unit="W")
    three = Connector("c3", max_current_a=16, phases=3, voltage_v=230, rate_unit="A")
    reason = Reason("fair_share", "", "")

    def limit(connector: Connector, kw: float) -> Limit:
        value = kw * 1000 if connector.rate_unit == "W" else round(connector.amps(kw), 1)
        return Limit(connector.id, "s", "admitted", reason, connector.rate_unit, value, connector.amps(kw), kw, kw,
                     connector.phases, None, None)

    assert deadman_kw(limit(pile, 7.0), 3.37, pile) == 3.3
    assert deadman_kw(limit(pile, 2.0), 3.37, pile) == 2.0, "never above the limit itself"
    assert deadman_kw(limit(pile, 7.0), 1.0, pile) == 0.0, "1 kW is below 6 A at 230 V"
    assert 4.1 <= deadman_kw(limit(three, 11.0), 4.2, three) <= 4.2


def test_a_residents_plan_gives_its_session_urgency_and_deferral_and_ends_with_it() -> None:
    seen = ChargerSeen()
    seen.fold(message("event", {"type": "session_start", "id": "e1", "session": "S1", "connector": 1,
                                "id_tag": "tag-secret", "meter_start_kwh": 10.0}))
    seen.fold(message("telemetry", {"connector": 1, "status": "charging", "power_kw": 3.0, "energy_kwh": 14.0}))
    seen.plan = Plan("S1", energy_kwh=20.0, departure_ms=120 * MIN, deferrable=True)
    config = SiteConfig(power_cap_kw=20.0)
    _, _, [session] = site_inputs(config, None, [ChargerInput("c1", True, seen)], 30 * MIN)
    # 20 kWh wanted, 4 taken: 16 still wanted by the departure, and it may wait for the off-peak hours
    assert (session.id, session.energy_kwh, session.departure_ms, session.deferrable) == ("S1", 16.0, 120 * MIN, True)
    out = view("sunshine", allocate(*site_inputs(config, None, [ChargerInput("c1", True, seen)], 30 * MIN), 0),
               False, {"c1": ChargerInput("c1", True, seen)}, {})
    plan = out.connectors[0].plan
    assert plan is not None and (plan.session, plan.energy_kwh, plan.remaining_kwh, plan.departure) == (
        "S1", 20.0, 16.0, 120 * MIN)
    assert "tag-secret" not in out.model_dump_json() and "id_tag" not in out.model_dump_json()
    # a plan of another session (one that ended) is not this car's
    seen.plan = Plan("S0", energy_kwh=5.0)
    assert site_inputs(config, None, [ChargerInput("c1", True, seen)], 30 * MIN)[2][0].energy_kwh is None
    seen.plan = Plan("S1", energy_kwh=2.0)  # already had it: satisfied, given nothing
    assert site_inputs(config, None, [ChargerInput("c1", True, seen)], 30 * MIN)[2][0].energy_kwh == 0.0
    seen.fold(message("event", {"type": "session_stop", "id": "e2", "session": "S1", "energy_kwh": 4.0,
                                "duration_s": 60, "reason": "local"}))
    assert seen.plan is None  # the session ended: its plan with it


def test_a_sites_devices_come_from_an_index_that_follows_the_registry() -> None:
    from devices.charging_control import ChargingControl
    from hub.registry import Device, Registry, RegistryFile

    registry = Registry({}, [Device(site=s, kind="charger", device=f"c{i}") for s in ("a", "b") for i in range(3)])
    control = ChargingControl()
    assert [d.device for d in control.site_devices(registry, "a")] == ["c0", "c1", "c2"]
    registry.ensure(("a", "charger", "c9"))  # heard on the wire: the registry grew
    assert [d.device for d in control.site_devices(registry, "a")] == ["c0", "c1", "c2", "c9"]
    registry.add(RegistryFile(devices=[Device(site="a", kind="charger", device="c9", max_current_a=16)]))
    assert control.site_devices(registry, "a")[-1].max_current_a == 16, "a replaced entry is read anew"
    assert control.site_devices(registry, "nowhere") == []

