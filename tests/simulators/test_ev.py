"""The simulated piles' pure model: cars, the charging profile in force, and what a car draws under it."""

from __future__ import annotations

import random
from typing import Any

import pytest

from simulators import ev
from simulators.community import build
from simulators.ocpp_charger import OcppCharger, choose

pytestmark = pytest.mark.unit

T0 = 1_780_272_000_000
CAR = ev.Car("TAG", battery_kwh=60.0, soc_pct=50.0, target_pct=90.0, departs_ms=T0 + 3_600_000, max_kw=7.0)


def profile(purpose: str = "TxProfile", limit: float = 3000, unit: str = "W", pid: int = 1, stack: int = 1,
            kind: str = "Relative", periods: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"charging_profile_id": pid, "stack_level": stack, "charging_profile_purpose": purpose,
            "charging_profile_kind": kind, **extra,
            "charging_schedule": {"charging_rate_unit": unit,
                                  "charging_schedule_period": periods or [{"start_period": 0, "limit": limit}]}}


def stored(connector: int = 1, received_ms: int = T0, **kw: Any) -> ev.Stored:
    return ev.Stored(connector, profile(**kw), received_ms)


def test_the_same_seed_gives_the_same_cars_and_cars_are_plausible() -> None:
    one = [ev.arriving_car(random.Random(f"s{i}"), T0) for i in range(50)]
    assert one == [ev.arriving_car(random.Random(f"s{i}"), T0) for i in range(50)]
    for car in one:
        assert 40 <= car.battery_kwh <= 80 and 10 <= car.soc_pct <= 60 and car.target_pct in (80, 90, 100)
        assert T0 + 3_600_000 <= car.departs_ms <= T0 + 13 * 3_600_000 and car.wanted_kwh > 0


def test_a_car_draws_the_lowest_limit_tapers_near_full_and_pauses_below_6_a() -> None:
    assert ev.draw_w(CAR, None) == 7000.0
    assert ev.draw_w(CAR, 3000) == 3000.0
    assert ev.draw_w(CAR, 20_000) == 7000.0
    assert ev.draw_w(CAR, 6 * 230) == 1380.0
    assert ev.draw_w(CAR, 6 * 230 - 1) == 0.0  # under the IEC 61851 minimum: paused, never 5.9 A
    assert ev.draw_w(CAR, 0) == 0.0
    nearly = ev.Car("T", 60.0, 95.0, 100.0, T0, 7.0)
    assert 0 < ev.draw_w(nearly, None) < 7000
    assert ev.draw_w(ev.Car("T", 60.0, 90.0, 90.0, T0, 7.0), None) == 0.0


def test_charging_adds_energy_to_the_state_of_charge_and_never_past_the_target() -> None:
    car, wh = ev.charge(CAR, 6000, 3_600_000)
    assert wh == pytest.approx(6000) and car.soc_pct == pytest.approx(60.0)
    full, wh = ev.charge(CAR, 7000, 10 * 3_600_000)
    assert full.full and full.soc_pct == 90.0 and wh == pytest.approx(24_000)


def test_a_tx_profile_overrides_the_default_and_the_max_profile_caps_both() -> None:
    profiles = [stored(0, purpose="TxDefaultProfile", limit=5000, pid=2), stored(1, limit=4000, transaction_id=7)]
    assert ev.limit_w(profiles, 1, T0, T0, 7) == 4000
    assert ev.limit_w(profiles, 1, T0, T0, 8) == 5000  # another transaction's TxProfile does not apply
    assert ev.limit_w(profiles, 1, T0, None, None) == 5000
    capped = [*profiles, stored(0, purpose="ChargePointMaxProfile", limit=3500, pid=3)]
    assert ev.limit_w(capped, 1, T0, T0, 7) == 3500
    assert ev.limit_w([], 1, T0, T0, 7) is None


def test_the_period_in_force_is_chosen_by_its_start_period_and_amps_become_watts() -> None:
    periods = [{"start_period": 0, "limit": 16}, {"start_period": 600, "limit": 10, "number_phases": 1},
               {"start_period": 1200, "limit": 0}]
    profiles = [stored(unit="A", periods=periods)]
    assert ev.limit_w(profiles, 1, T0 + 1000, T0, 1) == 16 * 230
    assert ev.limit_w(profiles, 1, T0 + 600_000, T0, 1) == 10 * 230
    assert ev.limit_w(profiles, 1, T0 + 1_300_000, T0, 1) == 0
    # Periods need not come sorted; a Relative schedule counts from the transaction's start.
    shuffled = [stored(periods=[{"start_period": 60, "limit": 2000}, {"start_period": 0, "limit": 4000}])]
    assert ev.limit_w(shuffled, 1, T0 + 30_000, T0, 1) == 4000
    assert ev.limit_w(shuffled, 1, T0 + 90_000, T0, 1) == 2000


def test_a_schedule_past_its_duration_or_outside_validity_sets_no_limit() -> None:
    p = ev.Stored(1, {**profile(limit=2000), "charging_schedule": {
        "charging_rate_unit": "W", "duration": 900, "charging_schedule_period": [{"start_period": 0, "limit": 2000}]}},
        T0)
    default = stored(0, purpose="TxDefaultProfile", limit=5000, pid=2)
    assert ev.limit_w([p, default], 1, T0 + 899_000, T0, 1) == 2000
    assert ev.limit_w([p, default], 1, T0 + 900_000, T0, 1) == 5000  # the TxProfile ended: the default again
    later = stored(valid_from="2026-06-01T01:00:00Z")  # T0 is 00:00Z
    assert ev.limit_w([later], 1, T0, T0, 1) is None
    assert ev.limit_w([later], 1, T0 + 3_600_000, T0, 1) == 3000


def test_absolute_and_recurring_schedules_count_from_their_start_schedule() -> None:
    absolute = ev.Stored(1, {**profile(kind="Absolute"), "charging_schedule": {
        "charging_rate_unit": "W", "start_schedule": "2026-06-01T00:10:00Z",
        "charging_schedule_period": [{"start_period": 0, "limit": 4000}, {"start_period": 60, "limit": 2000}]}}, T0)
    assert ev.limit_w([absolute], 1, T0, T0, 1) is None  # before its start
    assert ev.limit_w([absolute], 1, T0 + 630_000, T0, 1) == 4000
    assert ev.limit_w([absolute], 1, T0 + 690_000, T0, 1) == 2000
    daily = ev.Stored(0, {**profile("TxDefaultProfile", kind="Recurring"), "recurrency_kind": "Daily",
                          "charging_schedule": {"charging_rate_unit": "W", "start_schedule": "2026-05-01T00:00:00Z",
                                                "charging_schedule_period": [{"start_period": 0, "limit": 1500},
                                                                             {"start_period": 3600, "limit": 7000}]}},
                      T0)
    assert ev.limit_w([daily], 1, T0 + 1_800_000, None, None) == 1500
    assert ev.limit_w([daily], 1, T0 + 2 * 3_600_000, None, None) == 7000


def test_the_highest_stack_level_wins_and_a_profile_replaces_its_id_or_its_slot() -> None:
    low, high = stored(limit=5000, pid=1, stack=1), stored(limit=2000, pid=2, stack=2)
    profiles, why = ev.accept([low], high, 7)
    assert why is None and ev.limit_w(profiles, 1, T0, T0, 7) == 2000
    profiles, _ = ev.accept(profiles, stored(limit=2500, pid=2, stack=2), 7)
    assert len(profiles) == 2 and ev.limit_w(profiles, 1, T0, T0, 7) == 2500
    profiles, _ = ev.accept(profiles, stored(limit=1800, pid=9, stack=2), 7)  # same purpose and level: replaced
    assert len(profiles) == 2 and ev.limit_w(profiles, 1, T0, T0, 7) == 1800
    assert ev.end_of_transaction(profiles) == []


def test_profiles_the_pile_must_reject_and_clearing() -> None:
    assert ev.accept([], stored(), None)[1]  # a TxProfile with no transaction
    assert ev.accept([], stored(0), 7)[1]  # a TxProfile on connector 0
    assert ev.accept([], stored(transaction_id=8), 7)[1]
    assert ev.accept([], stored(1, purpose="ChargePointMaxProfile"), 7)[1]
    assert ev.accept([], stored(purpose="Nonsense"), 7)[1]
    assert ev.accept([], stored(unit="kW"), 7)[1]
    profiles = [stored(0, purpose="TxDefaultProfile", pid=2), stored(pid=1)]
    assert ev.clear(profiles, profile_id=5) == (profiles, False)
    left, found = ev.clear(profiles, purpose="TxDefaultProfile")
    assert found and [s.profile["charging_profile_id"] for s in left] == [1]
    assert ev.clear(profiles) == ([], True)


def test_a_share_of_chargers_goes_to_ocpp_and_the_first_stays_on_mqtt() -> None:
    community = build("sunshine", 1, 100)
    chargers = community.of("charger")
    rest, piles = choose(community, share=1 / 3)
    assert piles == chargers[2::3] and chargers[0] not in piles
    assert len(rest.devices) + len(piles) == len(community.devices) and not set(map(id, piles)) & set(
        map(id, rest.devices))
    assert choose(community, count=2)[1] == chargers[-2:]
    assert choose(community, count=0)[1] == [] and choose(community)[1] == []


def test_a_pile_sees_cars_arrive_after_the_first_one_it_came_up_with() -> None:
    pile = OcppCharger("sunshine", "ev-9", "ws://hub", "pw", random.Random(1), lambda: T0, plugged_at_start=False)
    assert pile._car_arrives(T0, 0) is False
    assert pile._car_arrives(T0, 1000 * 3_600_000) is True  # over 1000 hours a car surely comes
    up = OcppCharger("sunshine", "ev-8", "ws://hub", "pw", random.Random(1), lambda: T0, plugged_at_start=True)
    assert up._car_arrives(T0, 0) is True
