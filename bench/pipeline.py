"""The hub's own CPU per message, in process: what `bench/ingest.py` measures minus sockets and the store.

    .venv/bin/python bench/pipeline.py [--messages N] [--profile]

A real `Hub` (alert engine, live bus, work-order desk, inside tracker: every listener of a
production hub) is fed the elevator telemetry of `bench/ingest.py` straight into its data path
(`Pipeline.handle`), 500 messages per commit (`flush`) as the MQTT edge does, with the outbox
encoding line protocol for InfluxDB. No broker and no InfluxDB answer (the hub retries them in the background), so the
figure is the pipeline's, steady and repeatable: decode, validate, redelivery keys, points,
live state, rules, alerts, and the outbox commit with its encoding.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import payloads  # noqa: E402
from hub.app import Hub  # noqa: E402
from hub.config import Settings  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

DEVICES = 50
COMMIT_EVERY = 500  # hub.mqtt.COMMIT_EVERY_MESSAGES


async def run(messages: int, profile: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="smarthub-bench-pipeline-"))
    settings = Settings(mqtt_url=f"mqtt://hub:x@127.0.0.1:{free_port()}", influx_url=f"http://127.0.0.1:{free_port()}",
                        root="bench", data_dir=work, admin_token="bench", log_level="error")
    per_device = messages // DEVICES

    def stream(base_ms: int) -> list[tuple[str, bytes, int]]:
        """(topic, payload, packet id), devices interleaved as they arrive."""
        out = [(f"bench/bench/elevator/e{d}/telemetry", body, i * DEVICES + d)
               for d in range(DEVICES) for i, body in enumerate(payloads(d, per_device, base_ms))]
        out.sort(key=lambda m: m[2])
        return [(topic, body, 1 + n % 65_535) for topic, body, n in out]

    now_ms = int(time.time() * 1000)
    async with Hub(settings) as hub:
        handle, flush = hub.pipeline.handle, hub.pipeline.flush
        for measured in (False, True):  # the first pass fills caches, as minutes of traffic would
            messages_ = stream(now_ms - (2 if measured else 3) * 3_600_000)
            profiler = cProfile.Profile() if profile and measured else None
            started, started_thread = time.process_time(), time.thread_time()
            if profiler:
                profiler.enable()
            for i, (topic, body, packet_id) in enumerate(messages_, 1):
                handle(topic, body, now_ms, False, packet_id, False)
                if i % COMMIT_EVERY == 0:
                    flush()
            flush()
            if profiler:
                profiler.disable()
            cpu, cpu_thread = time.process_time() - started, time.thread_time() - started_thread
            if measured:
                print(f"{len(messages_)} messages: {1e6 * cpu / len(messages_):.1f} us of CPU a message, "
                      f"{1e6 * cpu_thread / len(messages_):.1f} us in the pipeline's thread "
                      f"({hub.pipeline.stats.points} points, {hub.outbox.depth} waiting in the outbox)")
        if profile:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true", help="print the top functions by own time (cProfile)")
    args = parser.parse_args()
    asyncio.run(run(args.messages, args.profile))


if __name__ == "__main__":
    main()
