"""Orderly-charging allocator speed for one big site (issue 13 target: 500 chargers in under 50 ms).

    .venv/bin/python bench/allocator.py [--chargers N] [--runs R]

Every connector has a car (the worst case: all of them in the sort and the water-filling), a third of them
three-phase, half taking W, some deferrable with departures. Two sites: a roomy one (the headroom holds half
the maxima: everyone admitted, filling and ramping) and a tight one (room for 70% of the cars at 6 A: pausing,
starvation turns). Each run feeds the previous allocation back
in and moves the clock 30 s, as the hub would.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices.charging import Connector, Session, Site, Window, allocate  # noqa: E402

HOUR_MS = 3_600_000


def site_of(n: int, tight: bool, seed: int = 13) -> tuple[Site, list[Connector], list[Session]]:
    rng = random.Random(seed)
    connectors = [Connector(f"c{i:04d}", max_current_a=rng.choice([16.0, 32.0]), phases=3 if i % 3 == 0 else 1,
                            rate_unit="W" if i % 2 else "A", priority=int(i % 10 == 0)) for i in range(n)]
    sessions = [Session(c.id, id=f"s{i}", energy_kwh=rng.uniform(2, 60),
                        departure_ms=rng.choice([None, rng.randrange(HOUR_MS, 14 * HOUR_MS)]),
                        deferrable=rng.random() < 0.4) for i, c in enumerate(connectors)]
    cap = sum(c.min_kw for c in connectors) * 0.7 if tight else sum(c.max_kw for c in connectors) / 2
    site = Site(power_cap_kw=cap * 1.25, base_load_kw=cap * 0.25, off_peak=(Window(23, 7),), starve_after_ms=600_000)
    return site, connectors, sessions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=500)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    for tight in (False, True):
        site, connectors, sessions = site_of(args.chargers, tight)
        now, previous, times = 10 * HOUR_MS, None, []
        for _ in range(args.runs):
            start = time.perf_counter()
            previous = allocate(site, connectors, sessions, now, previous)
            times.append((time.perf_counter() - start) * 1000)
            now += 30_000
        assert previous is not None
        states = [lim.state for lim in previous.limits]
        times.sort()
        print(f"{'tight' if tight else 'roomy'} site, {args.chargers} chargers, {args.runs} runs: "
              f"median {statistics.median(times):.1f} ms, p95 {times[int(0.95 * (len(times) - 1))]:.1f} ms, "
              f"max {times[-1]:.1f} ms (target < 50 ms); last step {states.count('admitted')} admitted, "
              f"{states.count('paused')} paused, {previous.used_kw:.1f} of {previous.headroom_kw:.1f} kW headroom")

if __name__ == "__main__":
    main()
