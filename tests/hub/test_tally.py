"""`hub.tally`: today's figures counted from accepted events, the way the store would count their points."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from devices import REGISTRY
from devices.base import Accepted
from hub.ingest.decode import decode
from hub.tally import MINUTE_MS, TodayTally

pytestmark = pytest.mark.unit

START = 1_764_000_000_000 - 1_764_000_000_000 % MINUTE_MS  # a whole minute
GATE, ACCESS, CHARGER = "gate", "access", "charger"


def accepted(kind: str, payload: dict[str, Any], time_ms: int, site: str = "s1", retained: bool = False) -> Accepted:
    model = decode(REGISTRY[kind], "event", orjson.dumps(payload))
    return Accepted(site, kind, "d1", "event", model, time_ms, time_ms, 0, {}, retained)


def passage(n: int, direction: str, decision: str = "allowed") -> dict[str, Any]:
    return {"type": "passage", "id": f"p{n}", "plate": f"琼A1000{n}", "plate_color": "blue", "direction": direction,
            "lane": "1", "vehicle_class": "car", "confidence": 0.9, "category": "resident", "decision": decision}


@pytest.fixture
def tally() -> TodayTally:
    return TodayTally(REGISTRY, START)


def test_counts_each_figure_its_events_match(tally: TodayTally) -> None:
    for n, direction in enumerate(("in", "in", "out")):
        tally.on_message(accepted(GATE, passage(n, direction), START + n * 1_000))
    tally.on_message(accepted(GATE, passage(9, "in", "denied"), START + 5_000))  # a passage too, as stored
    tally.on_message(accepted(ACCESS, {"type": "access", "id": "a1", "method": "face", "subject": "r1",
                                       "result": "denied"}, START + 1))
    until = START + 10 * MINUTE_MS
    assert tally.total("in_today", "s1", START, until) == 3
    assert tally.total("out_today", "s1", START, until) == 1
    assert tally.total("denied_today", None, START, until) == 1
    assert tally.total("granted_today", None, START, until) == 0


def test_sums_a_field_and_keeps_sites_and_minutes_apart(tally: TodayTally) -> None:
    def stop(n: int, kwh: float) -> dict[str, Any]:
        return {"type": "session_stop", "id": f"s{n}", "session": f"S{n}", "energy_kwh": kwh, "duration_s": 60,
                "reason": "local"}

    tally.on_message(accepted(CHARGER, stop(1, 12.5), START + 30_000))
    tally.on_message(accepted(CHARGER, stop(2, 3.25), START + 2 * MINUTE_MS))
    tally.on_message(accepted(CHARGER, stop(3, 100.0), START + 2 * MINUTE_MS, site="s2"))
    assert tally.total("kwh_today", "s1", START, START + 3 * MINUTE_MS) == 15.75
    assert tally.total("kwh_today", "s1", START + MINUTE_MS, START + 3 * MINUTE_MS) == 3.25, "by minute"
    assert tally.total("kwh_today", "s1", START, START + MINUTE_MS) == 12.5
    assert tally.total("kwh_today", None, START, START + 3 * MINUTE_MS) == 115.75


def test_leaves_out_what_the_store_does_not_hold_or_the_tally_cannot_know(tally: TodayTally) -> None:
    tally.on_message(accepted(GATE, passage(1, "in"), START + 1_000, retained=True))  # not stored either
    tally.on_message(accepted(GATE, passage(2, "in"), START - 1))  # before the tally started
    assert tally.total("in_today", None, START, START + MINUTE_MS) == 0
    with pytest.raises(ValueError):
        tally.total("in_today", None, START - MINUTE_MS, START + MINUTE_MS)


def test_starts_at_the_next_whole_minute_and_forgets_old_minutes() -> None:
    tally = TodayTally(REGISTRY, START + 1)
    assert tally.since_ms == START + MINUTE_MS
    tally.on_message(accepted(GATE, passage(1, "in"), START + MINUTE_MS))
    tally.on_message(accepted(GATE, passage(2, "in"), START + 5 * 3_600_000))  # hours later: the first minute goes
    assert tally.total("in_today", None, START + MINUTE_MS, START + 6 * 3_600_000) == 1


def test_knows_the_summable_figures_of_every_kind(tally: TodayTally) -> None:
    declared = {name for kind in REGISTRY.values() if kind.overview for name, figure in kind.overview.today.items()
                if figure.aggregate in ("count", "sum")}
    assert declared and all(tally.covers(name) for name in declared)
    assert not tally.covers("no_such_figure")
