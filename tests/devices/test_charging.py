"""The orderly-charging allocator: its guarantees as properties over random sites, each rule by example."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from devices.charging import (
    MIN_CURRENT_A,
    Allocation,
    Connector,
    Session,
    Site,
    Window,
    _water_fill,
    allocate,
    deadman_schedule,
)

pytestmark = pytest.mark.unit

HOUR_MS = 3_600_000
STEP_MS = 30_000
NOON_CN = 4 * HOUR_MS  # 04:00 UTC is 12:00 in China: peak
NIGHT_CN = 15 * HOUR_MS  # 23:00 in China
VALLEY = (Window(23, 7),)  # 谷电 23:00-07:00, as in several provinces

connector_st = st.builds(
    Connector,
    id=st.just(""),
    max_current_a=st.sampled_from([4.0, 6.0, 10.0, 16.0, 32.0, 63.0]),
    phases=st.sampled_from([1, 3]),
    voltage_v=st.sampled_from([220.0, 230.0]),
    rate_unit=st.sampled_from(["A", "W"]),
    priority=st.integers(0, 2),
)


def session_st(connector: str) -> st.SearchStrategy[Session]:
    return st.builds(
        Session, connector=st.just(connector), id=st.just(f"s-{connector}"), car_present=st.booleans(),
        energy_kwh=st.none() | st.floats(0, 80), departure_ms=st.none() | st.integers(0, 24 * HOUR_MS),
        deferrable=st.booleans(), paused_since_ms=st.none() | st.integers(-2 * HOUR_MS, 0),
    )


@st.composite
def scenes(draw: st.DrawFn) -> tuple[Site, list[Connector], list[Session], int]:
    raw = draw(st.lists(connector_st, max_size=25))
    connectors = [Connector(f"c{i}", c.max_current_a, c.phases, c.voltage_v, c.rate_unit, c.priority)
                  for i, c in enumerate(raw)]
    sessions = [draw(session_st(c.id)) for c in connectors if draw(st.booleans())]
    tight = sum(c.min_kw for c in connectors)  # about where admission starts to bite
    site = draw(st.one_of(
        st.builds(Site, power_cap_kw=st.floats(0, 1.5 * tight), off_peak=st.just(VALLEY),
                  ramp_kw_per_step=st.floats(0.5, 50)),
        st.builds(Site, power_cap_kw=st.floats(0, 300), base_load_kw=st.floats(0, 320), off_peak=st.just(VALLEY),
                  ramp_kw_per_step=st.floats(0.5, 50)),
        st.builds(Site, transformer_kva=st.floats(0, 400), power_factor=st.floats(0.5, 1), margin_pct=st.floats(0, 50),
                  base_load_kw=st.floats(0, 300), off_peak=st.just(VALLEY)),
    ))
    return site, connectors, sessions, draw(st.integers(0, 2 * 24 * HOUR_MS))


def check(alloc: Allocation, connectors: list[Connector]) -> None:
    by_id = {c.id: c for c in connectors}
    assert sum(lim.draw_kw for lim in alloc.limits) <= alloc.headroom_kw + 1e-6
    for lim in alloc.limits:
        c = by_id[lim.connector]
        assert lim.value == round(lim.value, 1) and lim.current_a == round(lim.current_a, 1)
        assert lim.power_kw == round(lim.power_kw, 1)
        assert lim.current_a <= c.max_current_a + 1e-9
        if lim.state == "admitted":
            assert lim.current_a >= MIN_CURRENT_A
            assert c.amps(lim.draw_kw) >= MIN_CURRENT_A - 1e-9
        else:
            assert lim.value == lim.current_a == lim.power_kw == lim.draw_kw == 0


@settings(max_examples=300, deadline=None)
@given(scenes())
def test_limits_fit_the_headroom_and_admitted_cars_get_the_minimum(scene: tuple) -> None:
    site, connectors, sessions, now = scene
    first = allocate(site, connectors, sessions, now)
    check(first, connectors)
    later = allocate(site, connectors, sessions, now + STEP_MS, previous=first)
    check(later, connectors)
    assert site.headroom_kw >= 0
    assert [lim.connector for lim in first.limits] == [c.id for c in connectors]


@settings(max_examples=200, deadline=None)
@given(scenes())
def test_deterministic(scene: tuple) -> None:
    site, connectors, sessions, now = scene
    first = allocate(site, connectors, sessions, now)
    assert allocate(site, connectors, sessions, now) == first
    assert allocate(site, connectors, sessions[::-1], now) == first  # nor does the order of the sessions matter
    assert allocate(site, connectors, list(sessions), now, previous=first) == allocate(
        site, connectors, sessions, now, previous=first)


@settings(max_examples=60, deadline=None)
@given(st.lists(connector_st.filter(lambda c: c.max_current_a >= MIN_CURRENT_A), min_size=1, max_size=12),
       st.data())
def test_no_car_waits_past_the_bound(raw: list[Connector], data: st.DataObject) -> None:
    """With room for at least one car, a car paused past `starve_after_ms` is served within one step per car
    ahead of it: no wait exceeds the bound plus one step per car, whatever the priorities, off-peak hours and
    a base load that moves every step."""
    connectors = [Connector(f"c{i}", c.max_current_a, c.phases, c.voltage_v, c.rate_unit, c.priority)
                  for i, c in enumerate(raw)]
    assume(any(c.max_kw >= c.min_kw - 1e-9 for c in connectors))
    biggest_min = max(c.min_kw for c in connectors if c.max_kw >= c.min_kw - 1e-9)
    extra = data.draw(st.floats(0, sum(c.min_kw for c in connectors) - biggest_min))
    starve_ms = data.draw(st.sampled_from([5, 10, 30])) * 60_000
    cap = biggest_min + extra
    loads = data.draw(st.lists(st.floats(0, extra), min_size=1, max_size=20))  # the base load moves: cuts, ramps
    sessions = [Session(c.id, id=f"s{i}", deferrable=data.draw(st.booleans()),
                        energy_kwh=data.draw(st.none() | st.floats(1, 60)),
                        departure_ms=data.draw(st.none() | st.integers(0, 12 * HOUR_MS)))
                for i, c in enumerate(connectors)]
    bound = starve_ms + len(connectors) * STEP_MS
    start = data.draw(st.integers(0, 24 * HOUR_MS))
    last_served = dict.fromkeys((c.id for c in connectors), start)
    alloc = None
    for step in range(3 * bound // STEP_MS):
        now = start + step * STEP_MS
        site = Site(power_cap_kw=cap, base_load_kw=loads[step % len(loads)], off_peak=VALLEY,
                    starve_after_ms=starve_ms, ramp_kw_per_step=1)
        alloc = allocate(site, connectors, sessions, now, previous=alloc)
        check(alloc, connectors)
        assert any(lim.state == "admitted" for lim in alloc.limits)  # the site holds one car: someone charges
        for lim in alloc.limits:
            if lim.state != "paused":  # idle: a 6 A charger taking W cannot send 6 A on its 0.1 kW grid
                last_served[lim.connector] = now
            waited = now - last_served[lim.connector]
            assert waited <= bound, f"{lim.connector} waited {waited} ms"


def one_phase(cid: str, **kw: object) -> Connector:
    return Connector(cid, **kw)  # type: ignore[arg-type]


def test_headroom_from_the_transformer_and_never_negative() -> None:
    assert Site(transformer_kva=100, power_factor=0.9, margin_pct=10, base_load_kw=30).headroom_kw == pytest.approx(51)
    assert Site(transformer_kva=100, power_cap_kw=40, base_load_kw=30).headroom_kw == pytest.approx(10)
    site = Site(power_cap_kw=40, base_load_kw=55)
    assert site.headroom_kw == 0
    alloc = allocate(site, [one_phase("a")], [Session("a")], NOON_CN)
    assert (alloc.limits[0].state, alloc.limits[0].reason.code, alloc.limits[0].value) == ("paused", "no_headroom", 0)


def test_below_the_minimum_a_car_is_paused_never_given_less() -> None:
    """2 kW holds one 1-phase car at 6 A (1.32 kW) but not two: the second waits at 0, not at 3 A each."""
    site = Site(power_cap_kw=2, ramp_kw_per_step=10)
    alloc = allocate(site, [one_phase("a"), one_phase("b")], [Session("a"), Session("b")], NOON_CN)
    a, b = alloc.limits
    assert (a.state, a.value) == ("admitted", 9.0)  # 2 kW / 220 V = 9.09 A, rounded down
    assert (b.state, b.value, b.reason.code) == ("paused", 0, "no_headroom")
    assert b.paused_since_ms == NOON_CN
    assert b.reason.zh and b.reason.en


def test_the_rest_is_shared_max_min_fairly_up_to_each_maximum() -> None:
    site = Site(power_cap_kw=12, ramp_kw_per_step=100)
    cs = [one_phase("small", max_current_a=10), one_phase("a"), one_phase("b")]
    alloc = allocate(site, cs, [Session(c.id) for c in cs], NOON_CN)
    small, a, b = alloc.limits
    assert (small.value, small.reason.code) == (10.0, "at_max")
    assert (a.value, a.reason.code) == (b.value, b.reason.code) == (22.2, "fair_share")  # (12 - 2.2) / 2 kW
    roomy = allocate(Site(power_cap_kw=20, ramp_kw_per_step=100), cs, [Session(c.id) for c in cs], NOON_CN)
    assert [lim.value for lim in roomy.limits] == [10.0, 32.0, 32.0]
    assert roomy.used_kw == pytest.approx(2.2 + 2 * 7.04)


def test_priority_class_then_urgency_decide_who_charges() -> None:
    site = Site(power_cap_kw=1.5)  # room for one car at 6 A
    cs = [one_phase("private"), one_phase("public", priority=1)]
    alloc = allocate(site, cs, [Session("private", energy_kwh=50, departure_ms=NOON_CN + HOUR_MS), Session("public")],
                     NOON_CN)
    assert alloc.get("public").state == "admitted" and alloc.get("private").state == "paused"

    cs = [one_phase("relaxed"), one_phase("hurried")]
    sessions = [Session("relaxed", energy_kwh=10, departure_ms=NOON_CN + 10 * HOUR_MS),
                Session("hurried", energy_kwh=10, departure_ms=NOON_CN + HOUR_MS)]
    alloc = allocate(site, cs, sessions, NOON_CN)
    assert alloc.get("hurried").state == "admitted" and alloc.get("relaxed").state == "paused"


def test_deferrable_sessions_wait_in_peak_and_share_alike_off_peak() -> None:
    site = Site(power_cap_kw=6, off_peak=VALLEY, ramp_kw_per_step=100)
    cs = [one_phase("now"), one_phase("later")]
    sessions = [Session("now"), Session("later", deferrable=True)]
    peak = allocate(site, cs, sessions, NOON_CN)
    assert not peak.off_peak
    assert peak.get("later").value == 6.0  # admitted at its minimum, the rest to the non-deferrable car
    assert peak.get("now").power_kw == pytest.approx(6 - 1.32, abs=0.1)
    night = allocate(site, cs, sessions, NIGHT_CN)
    assert night.off_peak
    assert night.get("later").value == night.get("now").value == 13.6  # 3 kW each
    tight = allocate(Site(power_cap_kw=2, off_peak=VALLEY), cs, sessions, NOON_CN)
    assert tight.get("later").reason.code == "deferred_peak" and tight.get("now").state == "admitted"


def test_ramp_up_gently_cut_at_once() -> None:
    cs = [one_phase("a")]
    site = Site(power_cap_kw=20, ramp_kw_per_step=1)
    steps = [allocate(site, cs, [Session("a")], NOON_CN)]
    for i in range(1, 6):
        steps.append(allocate(site, cs, [Session("a")], NOON_CN + i * STEP_MS, previous=steps[-1]))
    draws = [s.limits[0].draw_kw for s in steps]
    assert draws[0] == pytest.approx(1.32)  # starting at the minimum is always allowed
    assert all(b - a <= 1 + 1e-9 for a, b in zip(draws, draws[1:], strict=False))
    assert steps[-1].limits[0].reason.code in ("ramping", "at_max")
    cut = allocate(Site(power_cap_kw=20, base_load_kw=18.5, ramp_kw_per_step=1), cs, [Session("a")],
                   NOON_CN + 6 * STEP_MS, previous=steps[-1])
    assert cut.limits[0].draw_kw <= 1.5 and cut.limits[0].state == "admitted"


def test_three_phase_and_single_phase_conversions() -> None:
    three = Connector("t", phases=3, voltage_v=220, max_current_a=16)
    one = Connector("o", voltage_v=220, max_current_a=32)
    assert three.kw(16) == pytest.approx(10.56) and three.amps(10.56) == pytest.approx(16)
    assert one.kw(32) == pytest.approx(7.04) and three.min_kw == pytest.approx(3.96)
    watts = Connector("w", phases=3, rate_unit="W", max_current_a=16)
    assert watts.min_kw == 4.0  # 3.96 kW rounded up to what can be sent: 0.1 kW
    alloc = allocate(Site(power_cap_kw=8, ramp_kw_per_step=100), [watts], [Session("w")], NOON_CN)
    lim = alloc.limits[0]
    assert (lim.unit, lim.value, lim.power_kw, lim.current_a, lim.phases) == ("W", 8000.0, 8.0, 12.1, 3)


def test_a_starved_car_goes_first() -> None:
    site = Site(power_cap_kw=1.5, starve_after_ms=10 * 60_000)
    cs = [one_phase("a", priority=2), one_phase("b")]
    alloc = None
    for i in range(25):
        alloc = allocate(site, cs, [Session("a", id="1"), Session("b", id="2")], NOON_CN + i * STEP_MS, alloc)
    assert alloc is not None and alloc.get("b").state == "admitted" and alloc.get("b").reason.code == "starved_first"
    states = []
    for i in range(25, 70):
        alloc = allocate(site, cs, [Session("a", id="1"), Session("b", id="2")], NOON_CN + i * STEP_MS, alloc)
        states.append(alloc.get("b").state)
    # b keeps its turn until a has waited as long, then they take turns: 10 minutes each, not one step
    assert states == ["admitted"] * 15 + ["paused"] * 20 + ["admitted"] * 10  # let in at step 20, out at 40, in at 60
    fresh = allocate(site, cs, [Session("a", id="1"), Session("b", id="3")], NOON_CN + 25 * STEP_MS, alloc)
    assert fresh.get("b").state == "paused"  # a new car on the connector does not inherit a pause


def test_a_pause_at_epoch_zero_is_kept() -> None:
    site = Site(power_cap_kw=1.5, starve_after_ms=HOUR_MS)
    cs = [one_phase("a", priority=1), one_phase("b")]
    first = allocate(site, cs, [Session("a"), Session("b")], 0)
    later = allocate(site, cs, [Session("a"), Session("b")], STEP_MS, first)
    assert first.get("b").paused_since_ms == later.get("b").paused_since_ms == 0


def test_idle_connectors() -> None:
    cs = [one_phase("empty"), one_phase("full"), one_phase("weak", max_current_a=5), one_phase("gone")]
    sessions = [Session("full", energy_kwh=0), Session("weak"), Session("gone", car_present=False)]
    alloc = allocate(Site(power_cap_kw=50), cs, sessions, NOON_CN)
    assert [(lim.state, lim.reason.code) for lim in alloc.limits] == [
        ("idle", "no_car"), ("idle", "satisfied"), ("idle", "below_minimum"), ("idle", "no_car")]
    with pytest.raises(ValueError):
        allocate(Site(power_cap_kw=50), cs, [Session("full"), Session("full")], NOON_CN)


def test_deadman_schedule_steps_down_to_a_safe_share() -> None:
    cs = [one_phase(f"c{i}") for i in range(4)]
    alloc = allocate(Site(power_cap_kw=20, ramp_kw_per_step=100), cs, [Session("c0"), Session("c1")], NOON_CN)
    lim = alloc.get("c0")
    sched = deadman_schedule(lim, alloc.safe_share_kw, cs[0])
    assert sched.unit == "A" and [p.start_s for p in sched.periods] == [0, 900]
    assert sched.periods[0].limit == lim.value == 32.0
    assert sched.periods[1].limit == 22.7  # 5 kW (20 kW over 4 connectors) at 220 V
    assert deadman_schedule(lim, 1.0, cs[0]).periods[1].limit == 0  # below 6 A: 0, not 4.5 A
    assert deadman_schedule(alloc.get("c2"), alloc.safe_share_kw, cs[2]).periods[1].limit == 0  # never raised
    watts = Connector("w", rate_unit="W", phases=3)
    w = allocate(Site(power_cap_kw=30, ramp_kw_per_step=100), [watts], [Session("w")], NOON_CN)
    assert deadman_schedule(w.limits[0], 7.25, watts).periods == (
        deadman_schedule(w.limits[0], 7.25, watts).periods[0], type(sched.periods[0])(900, 7200.0, 3))


def test_off_peak_windows_wrap_midnight() -> None:
    w = Window(23, 7)
    assert w.contains(23.5) and w.contains(0) and w.contains(6.99) and not w.contains(7) and not w.contains(12)
    assert Window(8, 12).contains(8) and not Window(8, 12).contains(12)
    with pytest.raises(ValueError):
        Window(25, 3)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 20), st.floats(0, 30)), min_size=1, max_size=40), st.floats(0, 400))
def test_water_filling_is_max_min_fair(cars: list[tuple[float, float]], extra: float) -> None:
    """All of `extra` is given unless every car is at its ceiling; a car raised is never above one that is
    below its ceiling."""
    ids = [f"c{i}" for i in range(len(cars))]
    floor = {cid: f for cid, (f, _) in zip(ids, cars, strict=True)}
    ceiling = {cid: max(f, f + c - 10) for cid, (f, c) in zip(ids, cars, strict=True)}
    given_ = dict(floor)
    _water_fill(ids, given_, ceiling, extra)
    added = sum(given_[cid] - floor[cid] for cid in ids)
    assert added <= extra + 1e-6
    if any(given_[cid] < ceiling[cid] - 1e-9 for cid in ids):
        assert added == pytest.approx(extra, abs=1e-6)
    for low in ids:
        if given_[low] < ceiling[low] - 1e-9:
            assert all(given_[cid] <= given_[low] + 1e-6 for cid in ids if given_[cid] > floor[cid] + 1e-9)
    assert all(floor[cid] - 1e-12 <= given_[cid] <= ceiling[cid] + 1e-12 for cid in ids)
