"""Orderly charging (有序充电): share one site's transformer among its charging cars. Pure; no I/O.

How it is meant to be called: once per site, on every change (a car arrives or leaves, a base-load reading,
a setting) and at least every 30 s, as

    allocation = allocate(site, connectors, sessions, now_ms, previous=allocation)

feeding the previous result back in (it carries the ramp's starting point and since when each car has been
paused). The caller sends each admitted or paused connector's `Limit.value` in `Limit.unit` (OCPP TxProfile
or MQTT `set_limit`), best as `deadman_schedule(...)`, so the chargers stay safe if the hub stops renewing.
The clock is the `now_ms` argument: the same inputs give the same allocation. Each connector comes back
admitted, paused (at 0, with since when) or idle (no car, nothing more wanted, or a maximum below 6 A),
with a reason code and its English and Chinese text (`REASONS`).

The rules, in order:
- headroom = capacity (`power_cap_kw`, else kVA x power factor x (1 - margin)) minus the base load, never < 0;
- a car charges at no less than its minimum (6 A, IEC 61851) or not at all: paused at 0, never given 3 A;
- cars are admitted at their minimum in this order: those paused longer than `starve_after_ms` first (the
  longest waiting first), then those so let in, for `starve_after_ms` more (their turn), then non-deferrable
  before deferrable sessions outside the off-peak windows (谷电), then by the charger's priority class, then by
  urgency (energy still wanted over the time to departure);
- what is left is shared max-min fairly in kW (water-filling) up to each car's maximum, non-deferrable
  sessions first outside off-peak windows, everyone alike inside them;
- a limit rises by at most `ramp_kw_per_step` a call (a car may always start at its minimum) and falls at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

MIN_CURRENT_A = 6.0
"""IEC 61851-1: below 6 A the control pilot's duty cycle means "no charging"."""
CHINA_UTC_OFFSET_MS = 8 * 3_600_000  # China keeps one zone, UTC+8, without daylight saving
DEADMAN_AFTER_S = 15 * 60
"""The schedule steps down to the safe share this long after it is sent; the hub renews it every 5 min."""
_EPS = 1e-9  # floats like 6 A * 220 V / 1000 / 220 V * 1000 must not floor to 5.9

RateUnit = Literal["A", "W"]
State = Literal["admitted", "paused", "idle"]


@dataclass(frozen=True, slots=True)
class Window:
    """An off-peak window in China local hours, [start, end); `Window(22, 8)` wraps past midnight."""

    start_h: float
    end_h: float

    def __post_init__(self) -> None:
        if not (0 <= self.start_h < 24 and 0 <= self.end_h <= 24):
            raise ValueError(f"off-peak window {self.start_h}-{self.end_h}: hours must lie in 0..24")

    def contains(self, hour: float) -> bool:
        if self.start_h <= self.end_h:
            return self.start_h <= hour < self.end_h
        return hour >= self.start_h or hour < self.end_h


@dataclass(frozen=True, slots=True)
class Site:
    """A site's supply: `power_cap_kw` when declared, else the transformer's kVA, power factor and margin."""

    transformer_kva: float | None = None
    power_factor: float = 0.9
    margin_pct: float = 10.0
    power_cap_kw: float | None = None
    base_load_kw: float = 0.0  # measured at the transformer's meter when there is one, else configured
    off_peak: tuple[Window, ...] = ()
    ramp_kw_per_step: float = 2.0
    starve_after_ms: int = 30 * 60_000

    def __post_init__(self) -> None:
        if self.power_cap_kw is None and self.transformer_kva is None:
            raise ValueError("a site needs power_cap_kw or transformer_kva")
        if not 0 < self.power_factor <= 1 or not 0 <= self.margin_pct < 100:
            raise ValueError(f"power factor {self.power_factor} must be in (0, 1], "
                             f"margin {self.margin_pct} in [0, 100)")
        if self.ramp_kw_per_step <= 0 or self.starve_after_ms <= 0:
            raise ValueError("ramp_kw_per_step and starve_after_ms must be positive")

    @property
    def capacity_kw(self) -> float:
        if self.power_cap_kw is not None:
            return self.power_cap_kw
        assert self.transformer_kva is not None
        return self.transformer_kva * self.power_factor * (1 - self.margin_pct / 100)

    @property
    def headroom_kw(self) -> float:
        return max(0.0, self.capacity_kw - max(0.0, self.base_load_kw))

    def is_off_peak(self, now_ms: int) -> bool:
        hour = ((now_ms + CHINA_UTC_OFFSET_MS) % 86_400_000) / 3_600_000
        return any(w.contains(hour) for w in self.off_peak)


@dataclass(frozen=True, slots=True)
class Connector:
    """One charging connector: its electrical limits, the unit its charger takes limits in, its priority class.

    `voltage_v` is phase to neutral (220 V in China); a three-phase connector draws 3 x V x A.
    A higher `priority` is served first (e.g. 1 for a shared public pile, 0 for a private one)."""

    id: str
    max_current_a: float = 32.0
    phases: Literal[1, 3] = 1
    voltage_v: float = 220.0
    rate_unit: RateUnit = "A"
    priority: int = 0
    min_current_a: float = MIN_CURRENT_A

    def __post_init__(self) -> None:
        if self.phases not in (1, 3):
            raise ValueError(f"connector {self.id}: phases must be 1 or 3, not {self.phases}")
        if self.voltage_v <= 0 or self.max_current_a < 0 or self.min_current_a <= 0:
            raise ValueError(f"connector {self.id}: voltage and minimum current must be > 0, maximum >= 0")

    def kw(self, current_a: float) -> float:
        return current_a * self.voltage_v * self.phases / 1000

    def amps(self, power_kw: float) -> float:
        return power_kw * 1000 / (self.voltage_v * self.phases)

    @property
    def min_kw(self) -> float:
        """The least power that still charges, on the grid of what can be sent (0.1 A or 0.1 kW, rounded up)."""
        if self.rate_unit == "A":
            return self.kw(_up(self.min_current_a))
        return _up(self.kw(self.min_current_a))

    @property
    def max_kw(self) -> float:
        if self.rate_unit == "A":
            return self.kw(_down(self.max_current_a))
        return _down(self.kw(self.max_current_a))


@dataclass(frozen=True, slots=True)
class Session:
    """A car at a connector. `energy_kwh` is what it still wants (None: unknown, as much as it takes);
    `departure_ms` the planned departure the resident gave; `paused_since_ms` what the caller knows of a
    pause the allocator did not see (after a restart); `deferrable`: may wait for the off-peak hours."""

    connector: str
    id: str = ""
    car_present: bool = True
    energy_kwh: float | None = None
    departure_ms: int | None = None
    deferrable: bool = False
    paused_since_ms: int | None = None

    def urgency_kw(self, now_ms: int) -> float:
        """The mean power it needs to leave full on time; 0 without a departure or a known need."""
        if self.energy_kwh is None or self.departure_ms is None:
            return 0.0
        hours = max(self.departure_ms - now_ms, 60_000) / 3_600_000  # past due: as urgent as one minute left
        return self.energy_kwh / hours


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    en: str
    zh: str


REASONS: dict[str, Reason] = {r.code: r for r in (
    Reason("no_car", "No car connected", "无车"),
    Reason("satisfied", "Car wants no more energy", "已充满"),
    Reason("below_minimum", "Connector maximum below the 6 A minimum", "最大电流低于6安"),
    Reason("fair_share", "Fair share of the headroom", "公平分配"),
    Reason("at_max", "At the connector's maximum", "已达最大功率"),
    Reason("ramping", "Ramping up gently", "缓慢升功率"),
    Reason("starved_first", "Waited too long: served first", "等待过久，优先充电"),
    Reason("no_headroom", "No headroom for the 6 A minimum", "容量不足，暂停"),
    Reason("deferred_peak", "Deferrable: waits for off-peak hours", "错峰充电，等待谷电"),
)}


@dataclass(frozen=True, slots=True)
class Limit:
    """One connector's limit. `value` in `unit` is what the charger is sent (rounded down to 0.1);
    `current_a` and `power_kw` are the same limit in both units, `draw_kw` the most it lets the car take."""

    connector: str
    session: str | None
    state: State
    reason: Reason
    unit: RateUnit
    value: float
    current_a: float
    power_kw: float
    draw_kw: float
    phases: int
    paused_since_ms: int | None = None
    turn_until_ms: int | None = None  # let in for having waited: keeps its place until then


@dataclass(frozen=True, slots=True)
class Allocation:
    at_ms: int
    capacity_kw: float
    base_load_kw: float
    headroom_kw: float
    used_kw: float
    off_peak: bool
    limits: tuple[Limit, ...]
    _by_connector: dict[str, Limit] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_connector.update((lim.connector, lim) for lim in self.limits)

    def get(self, connector: str) -> Limit | None:
        return self._by_connector.get(connector)

    @property
    def safe_share_kw(self) -> float:
        """What every connector may draw at once without the hub: the headroom split over all of them."""
        return self.headroom_kw / len(self.limits) if self.limits else 0.0


@dataclass(frozen=True, slots=True)
class Period:
    start_s: int
    limit: float
    phases: int


@dataclass(frozen=True, slots=True)
class Schedule:
    """A TxProfile-style charging schedule: periods from the profile's start, the last one holding."""

    unit: RateUnit
    periods: tuple[Period, ...]


def allocate(site: Site, connectors: Sequence[Connector], sessions: Iterable[Session], now_ms: int,
             previous: Allocation | None = None) -> Allocation:
    """Every connector's limit for now (see the module docstring for the rules); deterministic."""
    headroom = site.headroom_kw
    off_peak = site.is_off_peak(now_ms)
    by_id = {c.id: c for c in connectors}
    if len(by_id) != len(connectors):
        raise ValueError("connector ids must be unique")
    wanting: dict[str, Session] = {}
    idle: dict[str, str] = {c.id: "no_car" for c in connectors}
    session_of: dict[str, str] = {}
    for s in sessions:
        if s.connector in session_of:
            raise ValueError(f"two sessions on connector {s.connector}")
        if s.connector not in by_id or not s.car_present:
            continue
        session_of[s.connector] = s.id
        c = by_id[s.connector]
        if s.energy_kwh is not None and s.energy_kwh <= 0:
            idle[c.id] = "satisfied"
        elif c.max_kw + _EPS < c.min_kw:
            idle[c.id] = "below_minimum"
        else:
            wanting[c.id] = s
            del idle[c.id]

    paused_since = {cid: _paused_since(s, previous) for cid, s in wanting.items()}
    starving = {cid for cid, p in paused_since.items() if p is not None and now_ms - p >= site.starve_after_ms}
    tier = {cid: int(s.deferrable and not off_peak) for cid, s in wanting.items()}

    # A car let in for having waited keeps its turn for as long again, or it would get one step in each bound.
    turn_until = {cid: _turn_until(wanting[cid], previous, now_ms) for cid in wanting}

    def order(cid: str) -> tuple[object, ...]:
        if cid in starving:
            return (0, paused_since[cid], cid)
        if turn_until[cid] is not None:
            return (1, turn_until[cid], cid)
        return (2, tier[cid], -by_id[cid].priority, -wanting[cid].urgency_kw(now_ms), cid)

    admitted: list[str] = []
    left = headroom
    for cid in sorted(wanting, key=order):
        need = by_id[cid].min_kw
        if need <= left + _EPS:
            admitted.append(cid)
            left -= need

    ceiling: dict[str, float] = {}
    for cid in admitted:
        c = by_id[cid]
        before = previous.get(cid) if previous is not None else None
        ramp_to = max(c.min_kw, (before.draw_kw if before else 0.0) + site.ramp_kw_per_step)
        ceiling[cid] = min(c.max_kw, ramp_to)

    given = {cid: by_id[cid].min_kw for cid in admitted}
    for t in (0, 1):
        group = [cid for cid in admitted if tier[cid] == t]
        _water_fill(group, given, ceiling, left)
        left = max(0.0, left - sum(given[cid] - by_id[cid].min_kw for cid in group))

    limits = []
    for c in connectors:
        if c.id in given:
            kw = given[c.id]
            turn = now_ms + site.starve_after_ms if c.id in starving else turn_until[c.id]
            reason = ("starved_first" if turn is not None else "at_max" if kw >= c.max_kw - 1e-6
                      else "ramping" if kw >= ceiling[c.id] - 1e-6 else "fair_share")
            limits.append(_limit(c, session_of.get(c.id), "admitted", reason, kw, None, turn))
        elif c.id in wanting:
            reason = "deferred_peak" if tier[c.id] else "no_headroom"
            since = paused_since[c.id]
            limits.append(_limit(c, session_of.get(c.id), "paused", reason, 0.0, now_ms if since is None else since))
        else:
            limits.append(_limit(c, session_of.get(c.id), "idle", idle[c.id], 0.0, None))
    return Allocation(at_ms=now_ms, capacity_kw=site.capacity_kw, base_load_kw=site.base_load_kw,
                      headroom_kw=headroom, used_kw=round(sum(lim.draw_kw for lim in limits), 6),
                      off_peak=off_peak, limits=tuple(limits))


def deadman_schedule(limit: Limit, safe_share_kw: float, connector: Connector,
                     after_s: int = DEADMAN_AFTER_S) -> Schedule:
    """The limit now, then after `after_s` the lower of it and the safe share (0 when that is below the
    minimum): should the hub stop renewing profiles, the connectors together still fit the headroom."""
    safe_kw = min(limit.draw_kw, max(0.0, safe_share_kw))
    if safe_kw + _EPS < connector.min_kw:
        safe_kw = 0.0
    later = _down(connector.amps(safe_kw)) if limit.unit == "A" else _down(safe_kw) * 1000
    return Schedule(limit.unit, (Period(0, limit.value, limit.phases), Period(after_s, round(later, 1), limit.phases)))


def _paused_since(s: Session, previous: Allocation | None) -> int | None:
    """The earliest pause known: the caller's, or the previous allocation's for the same session."""
    before = previous.get(s.connector) if previous is not None else None
    known = [p for p in (s.paused_since_ms, before.paused_since_ms if before and before.session == s.id else None)
             if p is not None]
    return min(known) if known else None


def _turn_until(s: Session, previous: Allocation | None, now_ms: int) -> int | None:
    before = previous.get(s.connector) if previous is not None else None
    if before is None or before.session != s.id or before.turn_until_ms is None or before.turn_until_ms <= now_ms:
        return None
    return before.turn_until_ms


def _water_fill(group: Sequence[str], given: dict[str, float], ceiling: Mapping[str, float], extra: float) -> None:
    """Raise `given` in `group` to one common level (max-min fair), each clamped to its ceiling, adding at
    most `extra` in total. The total added grows piecewise linearly with the level (slope: the cars between
    their floor and their ceiling), so one sweep over the sorted breakpoints finds the level exactly."""
    if not group or extra <= 0:
        return
    events = sorted([(given[cid], 1) for cid in group if ceiling[cid] > given[cid]]
                    + [(ceiling[cid], -1) for cid in group if ceiling[cid] > given[cid]])
    if not events:
        return
    level, slope, total = events[0][0], 0, 0.0
    for x, step in events:
        grow = slope * (x - level)
        if slope and total + grow >= extra:
            level += (extra - total) / slope
            break
        total += grow
        level = x
        slope += step
    for cid in group:
        given[cid] = max(given[cid], min(ceiling[cid], level))


def _limit(c: Connector, session: str | None, state: State, reason: str, kw: float, paused: int | None,
           turn: int | None = None) -> Limit:
    if c.rate_unit == "A":
        amps = _down(c.amps(kw))
        value, draw = amps, c.kw(amps)
        power = _down(draw)
    else:
        power = _down(kw)
        value, draw = round(power * 1000, 1), power
        amps = _down(c.amps(power))
    return Limit(c.id, session, state, REASONS[reason], c.rate_unit, value, amps, power, draw, c.phases, paused,
                 turn)


def _down(x: float) -> float:
    return math.floor(x * 10 + _EPS) / 10


def _up(x: float) -> float:
    return math.ceil(x * 10 - _EPS) / 10
