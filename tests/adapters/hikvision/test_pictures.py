"""Snapshots on disk: named after their event, never outside their folder, gone after the retention or the cap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.hikvision.body import Picture
from adapters.hikvision.pictures import SWEEP_EVERY_S, Pictures

pytestmark = pytest.mark.unit

DAY = 86_400.0


def test_saved_under_site_and_device(tmp_path: Path) -> None:
    pictures = Pictures(tmp_path, 30 * DAY)
    names = pictures.save("sunshine", "lpr-1", "hik-anpr-ab12", [Picture("a.jpg", "image/jpeg", b"1"),
                                                                  Picture("b", "image/png", b"22")])
    assert names == ["hik-anpr-ab12-0.jpg", "hik-anpr-ab12-1.png"]
    path = pictures.path("sunshine", "lpr-1", names[1])
    assert path is not None and path.read_bytes() == b"22"
    assert not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.parametrize(("site", "device", "name"), [
    ("sunshine", "lpr-1", "../../etc/passwd"), ("sunshine", "lpr-1", ".."), ("..", "lpr-1", "a.jpg"),
    ("sunshine", "a/b", "a.jpg"), ("sunshine", "lpr-1", ".hidden.tmp"), ("sunshine", "lpr-1", ""),
])
def test_no_path_leaves_the_folder(tmp_path: Path, site: str, device: str, name: str) -> None:
    assert Pictures(tmp_path, DAY).path(site, device, name) is None


def test_sweep_by_age_then_by_size(tmp_path: Path) -> None:
    pictures = Pictures(tmp_path, 30 * DAY, max_bytes=25)
    now = 2_000_000_000.0
    ages = {"old": 31 * DAY, "mid": 2 * DAY, "new": 1 * DAY, "newest": 0.0}
    for name, age in ages.items():
        (path,) = pictures.save("s", "d", name, [Picture(name, "image/jpeg", b"x" * 10)])
        os.utime(tmp_path / "s" / "d" / path, (now - age, now - age))
    assert pictures.sweep(now) == 2  # `old` by age, then `mid` to get under 25 bytes
    assert sorted(p.name for p in tmp_path.rglob("*.jpg")) == ["new-0.jpg", "newest-0.jpg"]


def test_one_sweep_per_period(tmp_path: Path) -> None:
    pictures = Pictures(tmp_path, DAY)
    assert pictures.sweep_due(10_000.0) and not pictures.sweep_due(10_001.0)
    assert pictures.sweep_due(10_000.0 + SWEEP_EVERY_S)
