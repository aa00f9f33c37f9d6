"""Line-protocol encoding speed, ours against influxdb-client's `Point`, and embedded store writes.

    .venv/bin/python bench/lineproto.py [--points N]

The embedded part measures how long one write batch would hold the event
loop if it ran there: the reason `EmbeddedStorage.write` uses a worker thread.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from influxdb_client.client.write.point import Point as ClientPoint
from influxdb_client.domain.write_precision import WritePrecision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices.base import Point  # noqa: E402
from hub.storage.embedded import EmbeddedStorage  # noqa: E402
from hub.storage.lineproto import encode  # noqa: E402

N = 100_000
BATCHES = (100, 5_000)  # a light flush, and the outbox writer's catch-up batch (WRITE_BATCH_POINTS)


def sample(n: int, start_ms: int = 1_790_000_000_000) -> list[Point]:
    """Half elevator telemetry from 200 cars, half gate passages with Chinese plates."""
    points = []
    for i in range(n):
        if i % 2:
            points.append(Point("elevator", {"site": "sunshine", "device": f"e{i % 200}", "building": f"{i % 12}号楼"},
                                {"floor": i % 30, "direction": "up", "door": "closed", "running": True,
                                 "speed_mps": 1.75, "load_kg": 320.5, "occupied": True, "mode": "normal",
                                 "trips": 100_000 + i, "door_cycles": 200_000 + i, "seq": i, "lag_ms": 12},
                                start_ms + i))
        else:
            points.append(Point("gate_event", {"site": "sunshine", "device": f"g{i % 8}", "type": "passage"},
                                {"plate": "琼A12345", "plate_color": "blue", "direction": "in", "lane": "east-1",
                                 "vehicle_class": "car", "confidence": 0.97, "decision": "allowed",
                                 "category": "resident", "id": f"p-{i}", "seq": i, "lag_ms": 40}, start_ms + i))
    return points


def client_encode(points: list[Point]) -> bytes:
    lines = []
    for p in points:
        cp = ClientPoint(p.measurement).time(p.time_ms, WritePrecision.MS)
        for key, tag in p.tags.items():
            cp.tag(key, tag)
        for key, value in p.fields.items():
            cp.field(key, value)
        lines.append(cp.to_line_protocol())
    return "\n".join(lines).encode()


def best_of(fn: Callable[[list[Point]], object], points: list[Point], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn(points)
        best = min(best, time.perf_counter() - started)
    return best


async def embedded_writes(points: list[Point], batch: int) -> float:
    """Seconds to write all points in batches of `batch` into a fresh file (the thread's own time, no overlap)."""
    with tempfile.TemporaryDirectory() as directory:
        store = EmbeddedStorage(Path(directory) / "bench.db", retention_days=36_500)
        await store.start()
        started = time.perf_counter()
        for i in range(0, len(points), batch):
            await store.write(points[i : i + batch])
        elapsed = time.perf_counter() - started
        await store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=N)
    n = parser.parse_args().points
    points = sample(n)
    assert encode(points) == client_encode(points), "encoders disagree"
    ours = best_of(encode, points)
    theirs = best_of(client_encode, points)
    print(f"{n:,} points (elevator telemetry and gate passages), best of 3, one core")
    print(f"{'encoder':<28} {'points/s':>12} {'us/point':>9}")
    print(f"{'hub.storage.lineproto':<28} {n / ours:>12,.0f} {ours / n * 1e6:>9.2f}")
    print(f"{'influxdb_client.Point':<28} {n / theirs:>12,.0f} {theirs / n * 1e6:>9.2f}")
    print(f"speed-up: {theirs / ours:.1f}x\n")

    print(f"EmbeddedStorage.write, {n:,} points into a fresh file")
    print(f"{'batch':>7} {'points/s':>12} {'ms/batch':>9}")
    for batch in BATCHES:
        elapsed = asyncio.run(embedded_writes(points, batch))
        print(f"{batch:>7,} {n / elapsed:>12,.0f} {elapsed / (n / batch) * 1e3:>9.2f}")


if __name__ == "__main__":
    main()
