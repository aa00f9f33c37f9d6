"""simulators/frigate.py: a seed decides the stream, and everything it sends maps cleanly through the Frigate
adapter onto camera messages the hub accepts, the domain labels included."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import orjson
import pytest

from adapters.frigate import intake, mapping
from adapters.frigate.mapping import Memory, Message, Unmapped
from devices import REGISTRY
from hub.cli import main
from hub.ingest.decode import decode
from hub.registry import Registry
from simulators import frigate

pytestmark = pytest.mark.unit

START_MS = 1_796_119_200_000


def test_a_seed_decides_the_stream() -> None:
    assert frigate.stream(3, START_MS, 600) == frigate.stream(3, START_MS, 600)
    assert frigate.stream(3, START_MS, 600) != frigate.stream(4, START_MS, 600)


def test_the_stream_maps_onto_accepted_camera_messages_with_the_domain_labels() -> None:
    reg = frigate.registry("sunshine")
    cameras = intake.cameras(Registry(reg.sites, reg.devices))
    memory, labels, unmapped = Memory(), Counter[tuple[str, str]](), []
    messages = frigate.stream(1, START_MS, 3 * 3600)
    assert [m.at_ms for m in messages] == sorted(m.at_ms for m in messages)
    for m in messages:
        which = mapping.route(m.topic, "frigate")
        assert which is not None, m.topic
        if which[0] == "events":
            out = mapping.event(m.payload, cameras, memory, "http://frigate:5000", m.at_ms)
        elif which[0] == "reviews":
            out = mapping.review(m.payload, cameras, memory, m.at_ms)
        elif which[0] == "available":
            out = mapping.available(m.payload, cameras)
        else:
            out = mapping.status(which[1], which[2], m.payload, cameras, m.at_ms)
        for r in out:
            if isinstance(r, Unmapped):
                unmapped.append((m.topic, r))
                continue
            assert isinstance(r, Message)
            payload = decode(REGISTRY["camera"], r.channel, orjson.dumps(r.payload))
            if r.channel == "event" and payload.type == "detection":  # type: ignore[attr-defined]
                labels[(payload.label, payload.phase)] += 1  # type: ignore[attr-defined]
    assert unmapped == []
    for label in ("fire_lane_blocked", "high_altitude_throw", "ebike_in_elevator", "person", "vehicle"):
        assert labels[(label, "start")] >= 1, labels
        assert labels[(label, "end")] == labels[(label, "start")], label  # every start ends
    assert not memory.open  # every object ended


def test_the_cli_writes_the_stream_and_its_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, reg = tmp_path / "frigate.jsonl", tmp_path / "registry.toml"
    code = main(["simulate", "--vendor", "frigate", "--duration", "120", "--out", str(out), "--registry-out", str(reg)])
    assert code == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["topic"] == "frigate/available" and lines[0]["retain"] is True
    assert json.loads(capsys.readouterr().out)["messages"] == len(lines)
    devices = list(Registry.load(reg, set(REGISTRY)))
    assert {d.aliases["frigate"] for d in devices} == {c.name for c in frigate.CAMERAS}
    assert not any('"label":"bottle"' in line["payload"] for line in lines)  # no throw unless asked
    capsys.readouterr()
    assert main(["simulate", "--vendor", "frigate", "--duration", "120", "--throws", "2", "--out", str(out)]) == 0
    thrown = {json.loads(line["payload"])["after"]["id"] for line in map(json.loads, out.read_text().splitlines())
              if line["topic"] == "frigate/events" and '"label":"bottle"' in line["payload"]}
    assert len(thrown) == 2


def test_a_simulated_throw_starts_at_a_floor_and_the_registry_calibrates_the_facade(tmp_path: Path) -> None:
    """`--throws`: an object thrown from a window of the facade, its first box at a floor's height, falling; the
    registry the simulator writes gives the facade camera the floor marks, so the evidence has a floor band."""
    from hub.incidents.floors import floor_band

    reg = frigate.registry("sunshine")
    facade = next(d for d in reg.devices if d.aliases.get("frigate") == frigate.FACADE)
    assert facade.floor_calibration == sorted(frigate.FACADE_MARKS)
    cameras = intake.cameras(Registry(reg.sites, reg.devices))
    memory, throws = Memory(), []
    for m in frigate.stream(5, START_MS, 60, throws=1):
        if m.topic == "frigate/events":
            throws += [r.payload for r in mapping.event(m.payload, cameras, memory, "http://frigate:5000", m.at_ms)
                       if isinstance(r, Message) and r.payload["id"].endswith(":high_altitude_throw")]
    start = next(p for p in throws if p["phase"] == "start" and p["start_top_px"] != 496.0)  # not a passing bird
    ends = [p for p in throws if p["id"] == start["id"] and p["phase"] == "end"]
    assert ends and ends[0]["start_top_px"] == start["start_top_px"] and ends[0]["clip"].endswith("/clip.mp4")
    band = floor_band(start["start_top_px"], facade.floor_calibration)
    assert band.known and 4 <= band.low <= 18  # type: ignore[operator]
    assert start["pre_clip"].startswith("http://frigate:5000/api/b3_facade/start/")
    text = reg.to_toml()
    assert "floor_calibration = [[250.0, 19], [300.0, 16]" in text  # the file `--registry-out` writes
    path = tmp_path / "registry.toml"
    path.write_text(text, encoding="utf-8")
    loaded = Registry.load(path, set(REGISTRY))
    assert loaded.get(facade.key).floor_calibration == facade.floor_calibration  # type: ignore[union-attr]
