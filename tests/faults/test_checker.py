"""The exactly-once count itself: it sees a message stored twice under two times, and one never stored."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.load import Published, count_stored, duplicate_examples

pytestmark = [pytest.mark.integration, pytest.mark.services]


def test_count_finds_twins_under_distinct_times_and_gaps(influxd: str) -> None:
    db = f"t_{uuid.uuid4().hex[:12]}"
    httpx.post(f"{influxd}/query", params={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
    try:
        lines = [
            "elevator,site=s,device=e00 seq=0i,lag_ms=1i 1000",
            "elevator,site=s,device=e00 seq=0i,lag_ms=2i 2000",  # seq 0 again, at another time: a twin
            "elevator,site=s,device=e00 seq=1i,lag_ms=2i 3000",  # seq 2 never stored
            'access_event,site=s,device=a00,type=access id="a00-0",lag_ms=0i 1000',
            'access_event,site=s,device=a00,type=access id="a00-0",lag_ms=0i 5000',  # no ts: a new receive time
            'access_event,site=s,device=a00,type=access id="a00-1",lag_ms=0i 6000',
            "elevator,site=other,device=e00 seq=2i 4000",  # another site's data does not count
        ]
        httpx.post(f"{influxd}/write", params={"db": db, "precision": "ms"},
                   content="\n".join(lines)).raise_for_status()
        published = Published("s", {"e00": ("elevator", "telemetry", 3), "a00": ("access", "event", 2),
                                    "e01": ("elevator", "telemetry", 1)}, 0)
        report = count_stored(influxd, db, published)
        counts = {r.device: (r.published, r.stored, r.missing, r.duplicated) for r in report.rows}
        assert counts == {"e00": (3, 3, 1, 1), "a00": (2, 3, 0, 1), "e01": (1, 0, 1, 0)}
        assert not report.exactly_once
        assert duplicate_examples(influxd, db, published, "a00") == ["a00 id=a00-0: time 1000 lag_ms 0, "
                                                                    "time 5000 lag_ms 0"]
    finally:
        httpx.post(f"{influxd}/query", params={"q": f'DROP DATABASE "{db}"'})
