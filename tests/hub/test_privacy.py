"""Personal fields as a viewer sees them: a plate masked to stay recognisable, a picture or clip link gone."""

from __future__ import annotations

import pytest

from hub.privacy import masked

pytestmark = pytest.mark.unit


def test_a_cameras_media_links_are_gone_for_a_viewer_and_the_rest_stays() -> None:
    row = {"type": "detection", "label": "high_altitude_throw", "zone": "b3-facade", "snapshot": "http://nvr/1.jpg",
           "clip": "https://nvr/1.mp4", "pre_clip": "http://nvr/pre.mp4", "post_clip": "http://nvr/post.mp4"}
    out = masked(row, "camera")
    assert {k: out[k] for k in ("snapshot", "clip", "pre_clip", "post_clip")} == dict.fromkeys(
        ("snapshot", "clip", "pre_clip", "post_clip"))
    assert out["label"] == "high_altitude_throw" and out["zone"] == "b3-facade" and row["snapshot"] == "http://nvr/1.jpg"


def test_a_plate_is_masked_and_its_picture_link_gone() -> None:
    out = masked({"plate": "琼A12345", "image": "http://nvr/p.jpg", "direction": "in"}, "gate")
    assert out == {"plate": "琼A·1***5", "image": None, "direction": "in"}
