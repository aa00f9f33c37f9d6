"""Line-protocol encoding speed: our encoder against influxdb-client's `Point`.

    .venv/bin/python bench/lineproto.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from influxdb_client import Point as ClientPoint
from influxdb_client import WritePrecision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices.base import Point  # noqa: E402
from hub.storage.lineproto import encode  # noqa: E402

N = 100_000


def sample(n: int) -> list[Point]:
    """Half elevator telemetry from 200 cars, half gate passages with Chinese plates."""
    now = 1_790_000_000_000
    points = []
    for i in range(n):
        if i % 2:
            points.append(Point("elevator", {"site": "sunshine", "device": f"e{i % 200}", "building": str(i % 12)},
                                {"floor": i % 30, "direction": "up", "door": "closed", "running": True,
                                 "speed_mps": 1.75, "load_kg": 320.5, "occupied": True, "mode": "normal",
                                 "trips": 100_000 + i, "door_cycles": 200_000 + i, "seq": i, "lag_ms": 12}, now + i))
        else:
            points.append(Point("gate_event", {"site": "sunshine", "device": f"g{i % 8}", "type": "passage"},
                                {"plate": "琼A12345", "plate_color": "blue", "direction": "in", "lane": "east-1",
                                 "vehicle_class": "car", "confidence": 0.97, "decision": "allowed",
                                 "category": "resident", "id": f"p-{i}", "seq": i, "lag_ms": 40}, now + i))
    return points


def client_encode(points: list[Point]) -> bytes:
    lines = []
    for p in points:
        cp = ClientPoint(p.measurement).time(p.time_ms, WritePrecision.MS)
        for k, v in p.tags.items():
            cp.tag(k, v)
        for k, v in p.fields.items():
            cp.field(k, v)
        lines.append(cp.to_line_protocol())
    return "\n".join(lines).encode()


def best_of(fn, points: list[Point], runs: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn(points)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    points = sample(N)
    assert encode(points) == client_encode(points), "encoders disagree"
    ours = best_of(encode, points)
    theirs = best_of(client_encode, points)
    print(f"{N:,} points (elevator telemetry and gate passages), best of 3, one core")
    print(f"{'encoder':<28} {'points/s':>12} {'us/point':>9}")
    print(f"{'hub.storage.lineproto':<28} {N / ours:>12,.0f} {ours / N * 1e6:>9.2f}")
    print(f"{'influxdb_client.Point':<28} {N / theirs:>12,.0f} {theirs / N * 1e6:>9.2f}")
    print(f"speed-up: {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
