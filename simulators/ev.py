"""The pure model behind a simulated OCPP charge point: cars that arrive, the charging profiles in force, and
how much a car draws under them.

Nothing here does I/O, reads a clock or uses global randomness: times are simulated epoch ms passed in, and
randomness comes from the seeded stream given, so the same seed gives the same cars. Profiles are the dicts the
`ocpp` library hands a SetChargingProfile handler (snake-case keys), so the edge stores them as they came.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from devices.charging import MIN_CURRENT_A
from simulators.charger import ARRIVALS_PER_HOUR, MAX_KW

VOLTAGE_V = 230.0
PHASES = 1
"""A residential AC pile: single phase, 32 A (7 kW as the MQTT simulator's)."""
MAX_CURRENT_A = 32.0
# IEC 61851: below 6 A a car cannot charge; a limit under it pauses the car (SuspendedEVSE). The allocator's own.
TAPER_FROM_SOC = 80.0
"""Above this state of charge the car's battery management draws less, down to a fifth at 100 %."""
PURPOSES = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")
WEEK_S = 7 * 24 * 3600
DAY_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Car:
    """A car plugged in: its battery, how full it is, how full its owner wants it, and when it leaves."""

    id_tag: str
    battery_kwh: float
    soc_pct: float
    target_pct: float
    departs_ms: int
    max_kw: float

    @property
    def wanted_kwh(self) -> float:
        return max(0.0, (self.target_pct - self.soc_pct) / 100 * self.battery_kwh)

    @property
    def full(self) -> bool:
        return self.soc_pct >= self.target_pct - 1e-6


def arriving_car(rng: random.Random, now_ms: int) -> Car:
    """A resident's car as it plugs in: 40-80 kWh, 10-60 % full, wanting 80-100 %, leaving in 1-13 hours
    (an evening arrival charges overnight)."""
    return Car(id_tag=f"{rng.getrandbits(32):08X}", battery_kwh=round(rng.uniform(40, 80), 1),
               soc_pct=round(rng.uniform(10, 60), 1), target_pct=float(rng.choice((80, 90, 100))),
               departs_ms=now_ms + int(rng.uniform(1, 13) * 3_600_000),
               max_kw=rng.choice((MAX_KW, MAX_KW, MAX_KW, 3.7)))


def arrival_rate(now_ms: int) -> float:
    """Expected arrivals per hour at one pile at this simulated time (China time, evening-heavy)."""
    return ARRIVALS_PER_HOUR[int((now_ms / 3_600_000 + 8) % 24)]


def arrives(rng: random.Random, now_ms: int, dt_ms: int) -> bool:
    """Whether a car arrives within the last `dt_ms` (a Poisson draw at the hour's rate)."""
    return rng.random() < min(1.0, arrival_rate(now_ms) * dt_ms / 3_600_000)


def taper(soc_pct: float) -> float:
    """The share of its maximum a car draws at this state of charge."""
    if soc_pct <= TAPER_FROM_SOC:
        return 1.0
    return max(0.2, 1 - 0.8 * (soc_pct - TAPER_FROM_SOC) / (100 - TAPER_FROM_SOC))


def charge(car: Car, power_w: float, dt_ms: int) -> tuple[Car, float]:
    """(the car after drawing `power_w` for `dt_ms`, the energy it took in Wh): never more than it still wants."""
    energy_kwh = min(max(power_w, 0.0) * dt_ms / 3_600_000_000, car.wanted_kwh)
    soc = min(car.target_pct, car.soc_pct + energy_kwh / car.battery_kwh * 100)
    return replace(car, soc_pct=soc), energy_kwh * 1000


def draw_w(car: Car, limit_w: float | None) -> float:
    """The power in W the car draws now: the lowest of the pile's, the car's and the profile's limits, tapered
    near full; a limit below the 6 A minimum pauses it at 0."""
    if car.full:
        return 0.0
    cap_w = min(MAX_CURRENT_A * VOLTAGE_V * PHASES, car.max_kw * 1000 * taper(car.soc_pct))
    if limit_w is not None:
        if limit_w < MIN_CURRENT_A * VOLTAGE_V * PHASES:
            return 0.0
        cap_w = min(cap_w, limit_w)
    return round(cap_w, 1)


@dataclass(frozen=True, slots=True)
class Stored:
    """A charging profile as the pile keeps it: on which connector, and when it was received (an Absolute
    profile without a startSchedule starts then; so does a TxDefaultProfile's Relative schedule with no
    transaction)."""

    connector: int
    profile: Mapping[str, Any]
    received_ms: int


def accept(profiles: Iterable[Stored], new: Stored, transaction_id: int | None) -> tuple[list[Stored], str | None]:
    """The stored profiles after a SetChargingProfile, or why it is rejected: a TxProfile needs a transaction
    on its connector (and the right one when it names it); ChargePointMaxProfile only on connector 0. A profile
    replaces one of the same id, or of the same purpose and stack level on the same connector."""
    p = new.profile
    purpose = p.get("charging_profile_purpose")
    if purpose not in PURPOSES:
        return list(profiles), f"unknown purpose {purpose!r}"
    if purpose == "TxProfile":
        if new.connector == 0 or transaction_id is None:
            return list(profiles), "a TxProfile needs a transaction on its connector"
        if p.get("transaction_id") not in (None, transaction_id):
            return list(profiles), "not the transaction in progress"
    if purpose == "ChargePointMaxProfile" and new.connector != 0:
        return list(profiles), "ChargePointMaxProfile is for connector 0"
    schedule = p.get("charging_schedule") or {}
    if schedule.get("charging_rate_unit") not in ("W", "A") or not schedule.get("charging_schedule_period"):
        return list(profiles), "a schedule needs a unit (W or A) and at least one period"
    kept = [s for s in profiles
            if s.profile.get("charging_profile_id") != p.get("charging_profile_id")
            and not (s.connector == new.connector and s.profile.get("charging_profile_purpose") == purpose
                     and s.profile.get("stack_level") == p.get("stack_level"))]
    return [*kept, new], None


def clear(profiles: Iterable[Stored], profile_id: int | None = None, connector: int | None = None,
          purpose: str | None = None, stack_level: int | None = None) -> tuple[list[Stored], bool]:
    """ClearChargingProfile: (what is left, whether any matched). With an id only that one goes; else every
    profile matching all criteria given."""
    def matches(s: Stored) -> bool:
        if profile_id is not None:
            return s.profile.get("charging_profile_id") == profile_id
        return ((connector is None or s.connector == connector)
                and (purpose is None or s.profile.get("charging_profile_purpose") == purpose)
                and (stack_level is None or s.profile.get("stack_level") == stack_level))
    profiles = list(profiles)
    left = [s for s in profiles if not matches(s)]
    return left, len(left) != len(profiles)


def end_of_transaction(profiles: Iterable[Stored]) -> list[Stored]:
    """A transaction ends: its TxProfiles go with it (OCPP 1.6, 3.13.1)."""
    return [s for s in profiles if s.profile.get("charging_profile_purpose") != "TxProfile"]


def _ms(value: Any) -> int | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def schedule_start_ms(stored: Stored, tx_start_ms: int | None) -> int:
    """When a profile's schedule begins: Relative from the transaction's start (or receipt when there is none),
    Absolute from its startSchedule (or receipt), Recurring from the latest daily or weekly repeat of it."""
    p = stored.profile
    schedule = p.get("charging_schedule") or {}
    kind = p.get("charging_profile_kind")
    if kind == "Relative":
        return tx_start_ms if tx_start_ms is not None else stored.received_ms
    return _ms(schedule.get("start_schedule")) or stored.received_ms


def _limit_of(stored: Stored, now_ms: int, tx_start_ms: int | None) -> float | None:
    """The limit in W that a profile sets now, or None if it sets none now (not yet valid, expired, before its
    schedule or past its duration)."""
    p = stored.profile
    valid_from, valid_to = _ms(p.get("valid_from")), _ms(p.get("valid_to"))
    if (valid_from is not None and now_ms < valid_from) or (valid_to is not None and now_ms >= valid_to):
        return None
    schedule = p.get("charging_schedule") or {}
    elapsed_s = (now_ms - schedule_start_ms(stored, tx_start_ms)) / 1000
    if p.get("charging_profile_kind") == "Recurring":
        period = WEEK_S if p.get("recurrency_kind") == "Weekly" else DAY_S
        elapsed_s %= period
    duration = schedule.get("duration")
    if elapsed_s < 0 or (duration is not None and elapsed_s >= duration):
        return None
    in_force = None
    for period in sorted(schedule.get("charging_schedule_period") or (), key=lambda x: x.get("start_period", 0)):
        if period.get("start_period", 0) <= elapsed_s:
            in_force = period
    if in_force is None:
        return None
    limit = float(in_force["limit"])
    if schedule.get("charging_rate_unit") == "A":
        limit *= VOLTAGE_V * min(PHASES, int(in_force.get("number_phases") or 3))
    return limit


def _top(profiles: Iterable[Stored], now_ms: int, tx_start_ms: int | None) -> float | None:
    """Of profiles of one purpose, the limit of the highest stack level that sets one now."""
    for stored in sorted(profiles, key=lambda s: -int(s.profile.get("stack_level", 0))):
        limit = _limit_of(stored, now_ms, tx_start_ms)
        if limit is not None:
            return limit
    return None


def limit_w(profiles: Iterable[Stored], connector: int, now_ms: int, tx_start_ms: int | None,
            transaction_id: int | None) -> float | None:
    """The limit in W in force on a connector now, or None for no limit: the transaction's TxProfile if one
    sets a limit now, else the TxDefaultProfile (the connector's own before connector 0's), capped by the
    ChargePointMaxProfile."""
    profiles = list(profiles)

    def of(purpose: str, on: int) -> list[Stored]:
        return [s for s in profiles if s.connector == on and s.profile.get("charging_profile_purpose") == purpose]

    tx = None
    if transaction_id is not None:
        tx = _top([s for s in of("TxProfile", connector)
                   if s.profile.get("transaction_id") in (None, transaction_id)], now_ms, tx_start_ms)
    if tx is None:
        tx = _top(of("TxDefaultProfile", connector), now_ms, tx_start_ms)
    if tx is None:
        tx = _top(of("TxDefaultProfile", 0), now_ms, tx_start_ms)
    cap = _top(of("ChargePointMaxProfile", 0), now_ms, tx_start_ms)
    limits = [x for x in (tx, cap) if x is not None]
    return min(limits) if limits else None
