from pathlib import Path

import pytest

from hub.registry import Registry, RegistryError, RegistryFile, Site

pytestmark = pytest.mark.unit

KINDS = {"elevator", "gate"}


def test_load_and_tags(tmp_path: Path) -> None:
    f = tmp_path / "r.toml"
    f.write_text("""
[sites.sunshine]
name = "阳光花园"

[[devices]]
site = "sunshine"
kind = "elevator"
device = "b3-e1"
building = "3"
floor = -1
name = "3号楼1号梯"
""", encoding="utf-8")
    registry = Registry.load(f, KINDS)
    device = registry.get(("sunshine", "elevator", "b3-e1"))
    assert device is not None and device.registered and device.tags == {"building": "3"}
    assert registry.sites["sunshine"].name == "阳光花园"
    heard = registry.ensure(("sunshine", "gate", "g1"))
    assert heard.registered is False and len(registry) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[devices]]\nsite='S!'\nkind='gate'\ndevice='g'\n", "devices.0.site"),
        ("[[devices]]\nsite='s'\nkind='toaster'\ndevice='g'\n", "unknown kind 'toaster'"),
        ("[[devices]]\nsite='s'\nkind='gate'\ndevice='g'\ncolour='red'\n", "colour"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "r.toml"
    f.write_text(text)
    with pytest.raises(RegistryError, match=message):
        Registry.load(f, KINDS)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="does not exist"):
        Registry.load(tmp_path / "none.toml", KINDS)


def test_simulated_community_registry_round_trips(tmp_path: Path) -> None:
    """`smarthub simulate --registry-out` writes what the hub reads: buildings, names, the power cap."""
    from devices import REGISTRY
    from simulators.community import build, registry_of

    written = registry_of(build("sunshine", 1, 40))
    f = tmp_path / "community.toml"
    f.write_text(written.to_toml(), encoding="utf-8")
    loaded = Registry.load(f, set(REGISTRY))
    assert sorted(loaded, key=lambda d: d.key) == sorted(written.devices, key=lambda d: d.key)
    assert loaded.sites == written.sites and written.sites["sunshine"].power_cap_kw
    assert any(d.building for d in loaded)
    quoted = RegistryFile(sites={"s": Site(name='He said "hi" \\ 东')}).to_toml()
    f.write_text(quoted, encoding="utf-8")
    assert Registry.load(f, set()).sites["s"].name == 'He said "hi" \\ 东'


def test_aliases_and_zone_rules_load_and_write_back(tmp_path: Path) -> None:
    """A device's name in a vendor system and its zones' meaning: read from TOML, written back the same."""
    f = tmp_path / "registry.toml"
    f.write_text('[[devices]]\nsite = "s"\nkind = "gate"\ndevice = "c1"\naliases = {nvr = "front door"}\n'
                 '[devices.zones.fire_lane]\nlabel = "blocked"\nobjects = ["person", "car"]\ndwell_s = 30\n',
                 encoding="utf-8")
    device = next(iter(Registry.load(f, {"gate"})))
    assert device.aliases == {"nvr": "front door"}
    assert (device.zones["fire_lane"].label, device.zones["fire_lane"].objects, device.zones["fire_lane"].dwell_s) == (
        "blocked", ["person", "car"], 30)
    again = tmp_path / "again.toml"
    again.write_text(RegistryFile(devices=[device]).to_toml(), encoding="utf-8")
    assert next(iter(Registry.load(again, {"gate"}))) == device


@pytest.mark.parametrize("zone", ['{label = ""}', '{label = "x", dwell_s = -1}', '{label = "x", colour = "red"}'])
def test_bad_zone_rules_are_refused_naming_the_entry(tmp_path: Path, zone: str) -> None:
    f = tmp_path / "registry.toml"
    f.write_text(f'[[devices]]\nsite = "s"\nkind = "gate"\ndevice = "c1"\nzones = {{z = {zone}}}\n', encoding="utf-8")
    with pytest.raises(RegistryError, match="zones.z"):
        Registry.load(f, {"gate"})
