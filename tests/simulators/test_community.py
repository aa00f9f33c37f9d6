"""The simulated community's registry: what its cameras see are real devices of the demo, so `smarthub demo`
shows a forced door and the camera that sees it as one incident."""

from __future__ import annotations

import pytest

from devices.access import FAULTS
from hub.alerts.models import open_alert
from hub.demo import DemoOptions
from hub.incidents.merge import alert_part, event_part, place, places_of
from hub.registry import Registry
from simulators.community import build, registry_of, sightlines
from simulators.kinds import SIMULATORS

pytestmark = pytest.mark.unit

T0 = 1_800_000_000_000


@pytest.mark.parametrize("devices", [len(SIMULATORS), 40, DemoOptions().devices, 1_000])
def test_the_demos_sees_name_real_devices_in_the_same_building(devices: int) -> None:
    options = DemoOptions(devices=devices)
    community = build(options.site, options.seed, options.devices)  # as run_demo builds it
    written = registry_of(community)
    by_name = {d.device: d for d in written.devices}
    seeing = [d for d in written.devices if d.sees]
    assert seeing, "the demo declares what its cameras see"
    for device in seeing:
        watcher = SIMULATORS[device.kind]
        [seen] = device.sees
        assert seen in by_name, f"{device.device} sees {seen}, which the demo does not have"
        assert by_name[seen].kind == watcher.sees and by_name[seen].building == device.building
    watchers = [d for d in written.devices if SIMULATORS[d.kind].sees is not None and d.building is not None]
    assert len(seeing) == len(watchers)  # each camera in a building with a door sees one
    assert Registry(sites=written.sites, devices=written.devices).get(seeing[0].key) is not None


def test_a_forced_door_and_the_camera_that_sees_it_are_one_incident_in_the_demos_registry() -> None:
    community = build(DemoOptions().site, DemoOptions().seed, DemoOptions().devices)
    registry = Registry(devices=registry_of(community).devices)
    camera, [door] = next(iter(sightlines(community).items()))
    site = community.site
    places = places_of(registry.get((site, "access", door)), door)
    forced = open_alert(site, "access", door, "door_forced", FAULTS["door_forced"], None, T0)
    incident = place([], alert_part(forced, places), 300_000)
    assert incident is not None
    seen = event_part(site, "camera", camera, "d1", T0 + 5_000, "detection",
                      places_of(registry.get((site, "camera", camera)), camera), {})
    building = registry.ensure((site, "access", door)).building
    other = next(d.device for d in community.of("camera") if d.building != building)
    elsewhere = event_part(site, "camera", other, "d2", T0 + 5_000, "detection",
                           places_of(registry.get((site, "camera", other)), other), {})
    joined = place([incident], seen, 300_000)
    assert joined is not None and joined.id == incident.id and len(joined.parts) == 2
    assert place([joined], elsewhere, 300_000) is None  # another building's camera is not part of it
