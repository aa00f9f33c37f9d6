"""The district roll-up (`hub.district`): per-community figures, the worst-first score and order, pure."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from devices import REGISTRY
from devices.base import FaultSpec, Severity
from hub import district
from hub.alerts.models import HUB_SITE, Alert, open_alert
from hub.alerts.orders import Sla, create
from hub.overview import device_figures
from hub.registry import Device, District, Registry, RegistryError, RegistryFile, Site
from hub.state import LiveState

pytestmark = pytest.mark.unit

NOW = 1_795_400_000_000
MAJOR = FaultSpec(Severity.MAJOR, zh="故障", en="Fault")
CRITICAL = FaultSpec(Severity.CRITICAL, zh="困人", en="Trapped")
MINOR = FaultSpec(Severity.MINOR, zh="轻微", en="Minor")


def alert(site: str, spec: FaultSpec, device: str = "e1", kind: str = "elevator", state: str = "open") -> Alert:
    return replace(open_alert(site, kind, device, spec.en.lower(), spec, None, NOW - 60_000), state=state)  # type: ignore[arg-type]


def heard(live: LiveState, site: str, kind: str, device: str, telemetry: dict[str, Any] | None = None,
          faults: tuple[str, ...] = ()) -> None:
    state = live.get((site, kind, device))
    state.online_flag, state.last_seen_ms = True, NOW - 1_000
    state.telemetry.update(telemetry or {})
    state.open_faults.update({code: {"since": NOW} for code in faults})


def registry_of(sites: dict[str, int], district_slug: str = "xinhe") -> Registry:
    """`sites`: slug -> number of elevators, all in one district."""
    devices = [Device(site=s, kind="elevator", device=f"e{i}") for s, n in sites.items() for i in range(n)]
    return Registry({s: Site(name=f"{s}小区", district=district_slug) for s in sites}, devices,
                    {district_slug: District(zh="新河街道", en="Xinhe")})


class Allocator:
    """What the charging gauge asks of the orderly-charging controller: (drawn, headroom) per site."""

    def __init__(self, loads: dict[str, tuple[float, float]]) -> None:
        self.loads = loads

    def load(self, site: str) -> tuple[float, float] | None:
        return self.loads.get(site)


def tile(registry: Registry, live: LiveState, slug: str, tally: district.AlertTally, overdue: int = 0,
         controllers: dict[str, Any] | None = None) -> dict[str, Any]:
    counted = asyncio.run(district.count_devices(list(registry), live, [slug], NOW, REGISTRY, tally.codes))
    return district.community(slug, registry.sites[slug], counted[slug], REGISTRY, tally, overdue, controllers or {})


def test_the_score_weighs_severities_orders_offline_and_strain() -> None:
    none = {"open": dict.fromkeys(("critical", "major", "minor", "info"), 0),
            "acknowledged": dict.fromkeys(("critical", "major", "minor", "info"), 0)}
    assert district.score(none, 0, 10, 10, ()) == 0
    one_critical = {**none, "open": {**none["open"], "critical": 1}}
    assert district.score(one_critical, 0, 10, 10, ()) == 200
    acked = {**none, "acknowledged": {**none["acknowledged"], "critical": 1}}
    assert district.score(acked, 0, 10, 10, ()) == 100, "an acknowledged alert counts half"
    assert district.score(none, 2, 10, 10, ()) == 20, "10 per overdue work order"
    assert district.score(none, 0, 5, 10, ()) == 25, "50 x the share offline"
    assert district.score(none, 0, 0, 0, ()) == 0, "a community without devices is not offline"
    assert district.score(none, 0, 10, 10, (0.5, 1.0)) == 45, "30 x each gauge's strain"
    everything_bad = district.score(none, 3, 0, 10, (1.0, 1.0))
    assert everything_bad < district.score(one_critical, 0, 10, 10, ()), \
        "one open critical alert outranks a dark community with overdue orders and every gauge at its worst"


def test_worst_first_is_by_score_then_slug_and_ranks_from_one() -> None:
    tiles = [{"site": "b", "score": 5.0}, {"site": "a", "score": 5.0}, {"site": "c", "score": 120.0},
             {"site": "d", "score": 0.0}]
    ordered = district.worst_first(tiles)
    assert [(c["site"], c["rank"]) for c in ordered] == [("c", 1), ("a", 2), ("b", 3), ("d", 4)]


def test_alerts_are_tallied_per_site_and_the_hubs_own_apart() -> None:
    active = [alert("a", CRITICAL), alert("a", MAJOR, "e2"), alert("a", MAJOR, "e3", state="acknowledged"),
              alert("b", MINOR), alert(HUB_SITE, MAJOR, "hub", "hub"), alert("b", MAJOR, state="resolved")]
    tally = district.tally_alerts(active)
    assert tally.counts["a"] == {("open", "critical"): 1, ("open", "major"): 1, ("acknowledged", "major"): 1}
    assert tally.counts["b"] == {("open", "minor"): 1}, "a resolved alert is not counted"
    assert tally.counts[HUB_SITE] == {("open", "major"): 1}
    assert tally.codes[("a", "elevator", "e1")] == {"trapped"}


def test_overdue_orders_are_those_past_a_deadline_and_not_resolved() -> None:
    sla = Sla(dispatch_s=60, resolve_s=3600)
    late = create(alert("a", MAJOR), "team", sla, "hub", NOW - 120_000)       # dispatch due 60 s after: missed
    fresh = create(alert("a", MAJOR, "e2"), "team", sla, "hub", NOW - 10_000)
    done = replace(create(alert("b", MAJOR), "team", sla, "hub", NOW - 120_000), state="resolved")
    assert district.overdue_by_site([late, fresh, done], NOW) == {"a": 1}


def test_a_community_rolls_up_like_its_overview() -> None:
    registry = registry_of({"a": 4})
    live = LiveState()
    heard(live, "a", "elevator", "e0", {"mode": "normal"})
    heard(live, "a", "elevator", "e1", {"mode": "maintenance"})
    heard(live, "a", "elevator", "e2", {"mode": "normal"}, faults=("overspeed",))  # e3 never heard
    tally = district.tally_alerts([alert("a", MAJOR, "e2")])
    a = tile(registry, live, "a", tally, 1)
    overview = device_figures(registry, live, "a", NOW, REGISTRY, tally.codes)
    assert a["devices"] == {"total": 4, "online": 3, "faulted": 1} == overview["devices"]["elevator"]
    assert a["zh"] == "a小区" and a["en"] == "a小区", "no English name: the Chinese one, never nothing"
    assert a["alerts"]["open"] == {"critical": 0, "major": 1, "minor": 0, "info": 0}
    gauge = a["gauges"]["elevator_availability"]
    assert gauge["zh"] == "电梯可用率" and gauge["en"] == "Elevator availability"
    assert (gauge["value"], gauge["of"], gauge["share"], gauge["strain"]) == (1, 4, 0.25, 0.75)
    assert overview["live"]["elevator"]["availability"] == gauge["share"], "the same figure as the site's wall"
    assert "charging_load" not in a["gauges"], "a community without chargers has no charging gauge"
    assert a["score"] == 20 + 10 + 50 * 0.25 + 30 * 0.75


def test_the_charging_gauge_holds_the_draw_against_the_allocators_headroom() -> None:
    registry = Registry({"a": Site(power_cap_kw=20, district="x"), "b": Site(power_cap_kw=30, district="x"),
                         "c": Site(district="x")},
                        [Device(site=s, kind="charger", device="c1") for s in ("a", "b", "c")],
                        {"x": District(zh="新河街道")})
    live = LiveState()
    for s in ("a", "b", "c"):
        heard(live, s, "charger", "c1", {"status": "charging", "power_kw": 22.0})
    tally = district.tally_alerts([])
    controllers = {"charger": Allocator({"a": (22.0, 20.0)})}
    a = tile(registry, live, "a", tally, controllers=controllers)["gauges"]["charging_load"]
    assert (a["value"], a["of"], a["share"], a["unit"]) == (22.0, 20.0, 1.1, "kW")
    assert a["strain"] == pytest.approx(0.5), "10 % over the cap is half the way to the worst"
    b = tile(registry, live, "b", tally, controllers=controllers)["gauges"]["charging_load"]
    assert (b["value"], b["of"], b["share"], b["strain"]) == (22.0, 30.0, 0.7333, 0.0), \
        "before the allocator's first round: against the declared cap; under it, no strain"
    c = tile(registry, live, "c", tally, controllers=controllers)["gauges"]["charging_load"]
    assert (c["value"], c["of"], c["share"], c["strain"]) == (22.0, None, None, 0.0), \
        "no declared capacity: a load and nothing to hold it against"


def test_devices_are_counted_as_the_overview_counts_them() -> None:
    registry = Registry({s: Site(district="x") for s in ("a", "b")},
                        [Device(site=s, kind=k, device=f"{k}{i}", heartbeat_s=60 if i == 0 else None)
                         for s in ("a", "b") for k in REGISTRY for i in range(3)])
    live = LiveState(heartbeat_s=300)
    for d in registry:
        if d.device.endswith("1"):
            continue  # never heard
        heard(live, d.site, d.kind, d.device, faults=("x",) if d.site == "a" else ())
        if d.device.endswith("0"):
            live.get(d.key).last_seen_ms = NOW - 120_000  # silent past its own 60 s heartbeat
    counted = asyncio.run(district.count_devices(list(registry), live, ["a", "b"], NOW, REGISTRY, {}))
    for s in ("a", "b"):
        rows = device_figures(registry, live, s, NOW, REGISTRY)["devices"].values()
        assert (counted[s].total, counted[s].online, counted[s].faulted) == tuple(
            sum(r[f] for r in rows) for f in ("total", "online", "faulted"))
    assert (counted["a"].total, counted["a"].online, counted["a"].faulted) == (18, 6, 6)


def test_a_district_lists_its_communities_worst_first_with_totals() -> None:
    registry = registry_of({"calm": 2, "trapped": 2, "dark": 2})
    registry.sites["elsewhere"] = Site(name="别处")  # in no district: on no district wall
    live = LiveState()
    for s in ("calm", "trapped"):
        for i in range(2):
            heard(live, s, "elevator", f"e{i}", {"mode": "normal"})
    active = [alert("trapped", CRITICAL), alert("calm", MINOR), alert(HUB_SITE, MAJOR, "hub", "hub")]
    [answer] = asyncio.run(district.districts(registry, live, active, [], REGISTRY, {}, ["xinhe"], NOW))
    assert [c["site"] for c in answer["communities"]] == ["trapped", "dark", "calm"]
    assert [c["rank"] for c in answer["communities"]] == [1, 2, 3]
    assert answer["district"] == {"slug": "xinhe", "zh": "新河街道", "en": "Xinhe"}
    assert answer["totals"]["communities"] == 3
    assert answer["totals"]["devices"] == {"total": 6, "online": 4, "faulted": 0}
    assert answer["totals"]["alerts"]["open"]["critical"] == 1
    assert answer["hub_alerts"]["open"]["major"] == 1, "the hub's own alerts once, for the whole district"
    assert all(c["alerts"]["open"]["major"] == 0 for c in answer["communities"]), "and on no tile"
    assert answer["weights"] == district.WEIGHTS


def test_a_district_with_no_communities_is_empty() -> None:
    registry = Registry({}, [], {"empty": District(zh="空街道")})
    [answer] = asyncio.run(district.districts(registry, LiveState(), [], [], REGISTRY, {}, ["empty"], NOW))
    assert answer["communities"] == [] and answer["totals"]["communities"] == 0


def test_the_registry_file_declares_districts_and_refuses_an_undeclared_one(tmp_path: Any) -> None:
    path = tmp_path / "registry.toml"
    path.write_text('[districts.xinhe]\nzh = "新河街道"\nen = "Xinhe Subdistrict"\n\n'
                    '[sites.sunshine]\nname = "阳光花园"\nname_en = "Sunshine Garden"\ndistrict = "xinhe"\n\n'
                    '[sites.loner]\nname = "独立小区"\n', encoding="utf-8")
    registry = Registry.load(path, set(REGISTRY))
    assert registry.districts["xinhe"] == District(zh="新河街道", en="Xinhe Subdistrict")
    assert registry.district_sites("xinhe") == ["sunshine"]
    assert registry.sites["loner"].district is None, "a site without a district still loads"
    again = RegistryFile(districts=registry.districts, sites=registry.sites).to_toml()
    (tmp_path / "again.toml").write_text(again, encoding="utf-8")
    assert Registry.load(tmp_path / "again.toml", set(REGISTRY)).sites == registry.sites, "to_toml round-trips"

    path.write_text('[sites.sunshine]\ndistrict = "xinhe"\n', encoding="utf-8")
    with pytest.raises(RegistryError, match="district 'xinhe', which is not declared"):
        Registry.load(path, set(REGISTRY))


def test_a_kind_gauge_needs_live_figures_to_read() -> None:
    from devices.base import DistrictGauge

    elevator = REGISTRY["elevator"]
    with pytest.raises(ValueError, match="no overview live figures"):
        replace(elevator, overview=None, district=DistrictGauge("x", "x", "x", lambda f, c, s: None))


def test_gauge_names_are_unique_across_kinds() -> None:
    names = [k.district.name for k in REGISTRY.values() if k.district is not None]
    assert len(names) == len(set(names)) and len(names) >= 2
    elevator = REGISTRY["elevator"]
    twin = replace(elevator, name="lift")
    with pytest.raises(ValueError, match="'elevator_availability' of kind 'lift' is also 'elevator'"):
        district.gauges_of({"elevator": elevator, "lift": twin}, {"elevator": {"total": 1, "in_service": 1,
                           "availability": 1.0}, "lift": {"total": 1, "in_service": 1, "availability": 1.0}},
                           {}, "a")
