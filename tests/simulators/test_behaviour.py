"""Simulated devices speak the contract, behave like the day, and replay exactly from a seed."""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import orjson
import pytest

from devices import REGISTRY
from hub import topics
from hub.ingest.decode import decode
from simulators.base import hour_of_day
from simulators.community import SCENARIOS, build, plan
from simulators.runner import run_to_file

pytestmark = pytest.mark.unit

START = 1_780_272_000_000  # 2026-06-01T08:00+08:00
DAY_MS = 24 * 3_600_000


def simulate(seed: int = 1, devices: int = 60, duration_ms: int = DAY_MS, scenario: str | None = None,
             start_ms: int = START) -> list[dict[str, Any]]:
    community = build("sunshine", seed, devices)
    offline = plan(community, scenario, start_ms) if scenario else []
    out = io.BytesIO()
    run_to_file(community, "community", start_ms, duration_ms, out, offline)
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture(scope="module")
def day() -> list[dict[str, Any]]:
    return simulate()


def test_every_message_of_a_day_passes_the_hubs_validation(day: list[dict[str, Any]]) -> None:
    seen: Counter[tuple[str, str]] = Counter()
    for message in day:
        parts = topics.parse(message["topic"], "community", REGISTRY)
        payload = decode(REGISTRY[parts.kind], parts.channel, orjson.dumps(message["payload"]))
        seen[(parts.kind, getattr(payload, "type", parts.channel))] += 1
    for kind, types in {"elevator": ["telemetry", "state"], "gate": ["passage", "barrier", "telemetry"],
                        "access": ["access", "telemetry"], "camera": ["detection", "telemetry"],
                        "charger": ["session_start", "session_stop", "telemetry"]}.items():
        for what in types:
            assert seen[(kind, what)] > 0, f"no {kind} {what} in a simulated day"


def test_traffic_follows_the_day(day: list[dict[str, Any]]) -> None:
    by_hour: Counter[int] = Counter()
    for m in day:
        if m["payload"].get("type") == "passage":
            by_hour[int(hour_of_day(m["t"]))] += 1
    assert by_hour[8] > 5 * by_hour[3] and by_hour[18] > 5 * by_hour[3], by_hour


def test_cars_arrive_in_the_evening_more_than_at_midday() -> None:
    """Of 40 chargers' day (a community's 8 are too few: busy evenings hide arrivals), the sessions that start
    after the estate came up (not the cars already plugged in at the start) are evening-heavy."""
    community = build("sunshine", 1, counts={"charger": 40})
    out = io.BytesIO()
    run_to_file(community, "community", START, DAY_MS, out)
    starts = Counter(int(hour_of_day(m["t"])) for line in out.getvalue().splitlines() if (m := orjson.loads(line))
                     and m["payload"].get("type") == "session_start" and m["t"] > START + 60_000)
    assert sum(starts[h] for h in range(17, 23)) > 1.5 * sum(starts[h] for h in range(8, 14)), starts


def test_plates_have_real_formats(day: list[dict[str, Any]]) -> None:
    from simulators.plates import PROVINCES

    passages = [m["payload"] for m in day if m["payload"].get("type") == "passage"]
    plates = [(p["plate"], p["plate_color"]) for p in passages]
    assert plates
    for plate, colour in plates:
        assert plate[0] in PROVINCES and plate[1].isupper()
        assert len(plate) in ((7, 8) if colour == "unknown" else (8,) if colour == "green" else (7,)), plate
    assert sum(p[0] == "琼" for p, _ in plates) > len(plates) / 2  # mostly local plates


def test_seq_counts_up_per_device(day: list[dict[str, Any]]) -> None:
    last: dict[str, int] = {}
    for m in day:
        device = m["topic"].rsplit("/", 1)[0]
        seq = m["payload"].get("seq")
        if seq is not None:
            assert seq == last.get(device, 0) + 1, device
            last[device] = seq


def test_the_same_seed_gives_the_same_bytes() -> None:
    def run(seed: int) -> bytes:
        out = io.BytesIO()
        run_to_file(build("sunshine", seed, 30), "community", START, 3_600_000, out, [])
        return out.getvalue()

    assert run(5) == run(5)
    assert run(5) != run(6)


def fault_events(messages: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["payload"].get("type") == "fault" and m["payload"]["code"] == code]


def test_trapped_passenger_unfolds_as_on_site() -> None:
    messages = simulate(scenario="trapped_passenger", duration_ms=20 * 60_000)
    raised, cleared = fault_events(messages, "trapped_passenger")
    assert raised["payload"]["active"] is True and raised["payload"]["detail"] == "between_floors"
    assert cleared["payload"]["active"] is False and cleared["t"] - raised["t"] > 5 * 60_000
    car = raised["topic"].rsplit("/", 1)[0]
    during = [m["payload"] for m in messages
              if m["topic"] == f"{car}/telemetry" and raised["t"] <= m["t"] < cleared["t"]]
    assert during and all(t["occupied"] and not t["running"] and t["door"] == "closed" for t in during)


@pytest.mark.parametrize(
    ("scenario", "check"),
    [
        ("door_forced_at_night", lambda ms: [m for m in fault_events(ms, "door_forced")
                                              if int(hour_of_day(m["t"])) == 2]),
        ("charger_fault", lambda ms: fault_events(ms, "high_temperature") and
            [m for m in ms if m["payload"].get("status") == "faulted"]),
        ("high_altitude_throw", lambda ms: [m for m in ms if m["payload"].get("label") == "high_altitude_throw"
                                             and "clip" in m["payload"] and "snapshot" in m["payload"]]),
        ("gate_stuck", lambda ms: fault_events(ms, "barrier_stuck") and
            [m for m in ms if m["payload"].get("type") == "barrier" and m["payload"]["state"] == "stuck"]),
        ("mass_offline", lambda ms: [m for m in ms if m["topic"].endswith("/state") and not m["payload"]["online"]]),
    ],
)
def test_scenarios_happen(scenario: str, check: Any) -> None:
    assert scenario in SCENARIOS
    assert check(simulate(scenario=scenario, duration_ms=DAY_MS if scenario == "door_forced_at_night"
                          else 30 * 60_000, devices=30))


def test_mass_offline_devices_come_back() -> None:
    messages = simulate(scenario="mass_offline", duration_ms=10 * 60_000, devices=30)
    states = [(m["topic"], m["payload"]["online"]) for m in messages if m["topic"].endswith("/state")]
    went_down = {t for t, online in states if not online}
    assert went_down
    for t in went_down:
        assert [online for topic_, online in states if topic_ == t][-1] is True


def command(device: Any, op: str, **args: Any) -> tuple[dict[str, Any] | None, list[Any]]:
    return device.command(START, orjson.dumps({"id": "c1", "op": op, "args": args}))


def test_devices_answer_commands() -> None:
    community = build("sunshine", 1, 30)
    charger, elevator, gate = (community.of(k)[0] for k in ("charger", "elevator", "gate"))
    reply, emits = command(charger, "set_limit", limit_kw=3.5)
    assert reply == {"id": "c1", "ok": True} and emits[0][1]["limit_kw"] == 3.5
    reply, _ = command(charger, "stop_session")
    assert reply == {"id": "c1", "ok": False, "error": "no session in progress"}
    reply, emits = command(charger, "reset", hard=True)  # an operator's OCPP-only op: an MQTT charger has none
    assert reply is not None and reply["ok"] is False and "not supported" in reply["error"] and emits == []
    reply, _ = command(charger, "set_limit", limit_kw=-1)
    assert reply is not None and reply["ok"] is False
    reply, _ = command(elevator, "open")
    assert reply == {"id": "c1", "ok": False, "error": "elevator has no op 'open'"}
    reply, emits = command(gate, "open")
    assert reply == {"id": "c1", "ok": True} and emits[0][1]["state"] == "open"
    assert charger.command(START, b"not json") == (None, [])


def test_a_charging_car_obeys_a_new_limit() -> None:
    charger = build("sunshine", 1, 30).of("charger")[0]
    charger.forced.append((START, "fault", {"code": "other_error", "lasts_ms": 1}))
    charger.status, charger.status_until = "preparing", START
    charger.step(START)
    assert charger.status == "charging" and charger.power_kw == 7.0
    command(charger, "set_limit", limit_kw=3.3)
    emits, _ = charger.step(START + 30_000)
    telemetry = [p for c, p in emits if c == "telemetry"][-1]
    assert telemetry["power_kw"] <= 3.3 and telemetry["limit_kw"] == 3.3


def test_a_layout_file_sets_the_counts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from simulators.community import load_layout

    layout = tmp_path / "layout.toml"
    layout.write_text("buildings = 4\n[devices]\nelevator = 8\ncharger = 3\ngate = 1\n")
    counts, buildings = load_layout(layout)
    community = build("sunshine", 1, counts=counts, buildings=buildings)
    assert Counter(d.kind_name for d in community.devices) == {"elevator": 8, "charger": 3, "gate": 1}
    assert {d.building for d in community.of("elevator")} == {"1", "2", "3", "4"}
    with pytest.raises(ValueError, match="needs at least one camera"):
        plan(community, "high_altitude_throw", START)
    layout.write_text("[devices]\ntoaster = 3\n")
    with pytest.raises(ValueError, match="unknown: toaster"):
        load_layout(layout)


def test_elevators_change_mode_at_night(day: list[dict[str, Any]]) -> None:
    modes = Counter((m["payload"]["mode"], int(hour_of_day(m["t"])) < 6 or int(hour_of_day(m["t"])) >= 23)
                    for m in day if "/elevator/" in m["topic"] and m["topic"].endswith("telemetry"))
    assert modes[("parking", True)] > 0 and modes[("parking", False)] == 0
    assert modes[("normal", False)] > modes[("normal", True)]


@pytest.mark.parametrize(("china_hour", "low", "high"), [(20, 0.6, 0.95), (15, 0.05, 0.45), (4, 0.0, 0.25)])
def test_chargers_start_with_the_hours_share_of_cars_plugged_in(china_hour: int, low: float, high: float) -> None:
    """A simulation started in the evening finds most chargers busy; one started at night, few."""
    community = build("s", 2, counts={"charger": 200})
    now_ms = (1_796_000_000_000 // 86_400_000 * 86_400_000) + (china_hour - 8) % 24 * 3_600_000
    assert int((now_ms / 3_600_000 + 8) % 24) == china_hour
    charging = 0
    for charger in community.of("charger"):
        emits, _ = charger.start(now_ms)
        charging += any(channel == "event" and payload.get("type") == "session_start" for channel, payload in emits)
    assert low <= charging / 200 <= high, charging


def test_cars_leave_only_after_coming_in_and_the_car_park_neither_fills_nor_empties() -> None:
    from simulators.runner import advance, schedule

    community = build("s", 3, counts={"gate": 2})
    start = 1_796_000_000_000
    heap = schedule(community, start, [])
    inside = {g.device: {p for p, _, _ in g.inside} for g in community.of("gate")}
    sizes = []
    for wake, emits in advance(community, heap, start + 4 * 86_400_000):
        gate = community.devices[wake.order].device
        for _, payload in emits:
            if payload.get("type") == "passage" and payload["decision"] != "denied":
                if payload["direction"] == "out":
                    assert payload["plate"] in inside[gate], "a car left that never came in"
                    inside[gate].discard(payload["plate"])
                else:
                    inside[gate].add(payload["plate"])
        sizes.append(sum(len(g.inside) for g in community.of("gate")))
    assert 100 < min(sizes[len(sizes) // 2:]) and max(sizes) < 800, (min(sizes), max(sizes))


def test_a_charger_falls_to_the_dead_man_step_when_the_hub_stops_renewing() -> None:
    """set_limit with then_kw/after_s: the cap holds until after_s, then falls (a renewal in between restarts it)."""
    charger = build("sunshine", 1, 30).of("charger")[0]
    charger.forced.append((START, "fault", {"code": "other_error", "lasts_ms": 1}))
    charger.status, charger.status_until = "preparing", START
    charger.step(START)
    command(charger, "set_limit", limit_kw=6.0, then_kw=1.5, after_s=900)
    emits, _ = charger.step(START + 600_000)
    assert [p for c, p in emits if c == "telemetry"][-1]["limit_kw"] == 6.0
    emits, _ = charger.step(START + 901_000)
    telemetry = [p for c, p in emits if c == "telemetry"][-1]
    assert telemetry["limit_kw"] == 1.5 and telemetry["power_kw"] <= 1.5


def test_a_steered_past_keeps_its_chargers_under_the_sites_cap() -> None:
    """`orderly` stands in for the hub's controller in a simulated past (the demo's history): the chargers'
    power added up never passes the cap, though unsteered the same evening wants far more."""
    from hub.registry import Site
    from simulators.charger import orderly
    from simulators.runner import messages

    def peak(steered: bool) -> float:
        community = build("sunshine", 3, counts={"charger": 20})
        site = Site(power_cap_kw=50.0)
        now: dict[str, float] = {}
        top = 0.0
        for _, topic, payload in messages(community, "community", START, START + DAY_MS,
                                          rounds=orderly(community.devices, site) if steered else None):
            if topic.endswith("/telemetry") and "power_kw" in payload:
                now[topic] = payload["power_kw"]
                top = max(top, sum(now.values()))
        return top

    assert peak(steered=False) > 70
    assert 45 < peak(steered=True) <= 50.0
