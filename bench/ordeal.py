"""The ordeal of issue 10's "Done when", in one run under QoS 1 load.

Mosquitto restarted `--restarts` times (default 10, SIGTERM and SIGKILL in turn), the
hub SIGKILLed `--kills` times (default 10) and started again on its data dir, and
InfluxDB stopped for `--outage-s` (default 120 s), all while tests/support/load.py's
at-least-once publisher sends elevator telemetry and access events without `ts`.
It prints the hub's reconnect time after each broker restart (the verdict wants
5 s at most), its `/api/health` while the broker was down (503 wanted) and once
back (200 wanted), and at the end whether every published message is stored
exactly once. Exit status 0 only when all of it holds.

    .venv/bin/python bench/ordeal.py                                  # the full ordeal, about 6 minutes
    .venv/bin/python bench/ordeal.py --restarts 2 --kills 2 --outage-s 20
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.faults import BrokerRound, kill_hub, restart_broker  # noqa: E402
from tests.support.hub_process import HubProcess, broker_grace_env  # noqa: E402
from tests.support.influx_fixtures import start_influxd  # noqa: E402
from tests.support.load import LoadPublisher, check_stored  # noqa: E402
from tests.support.mqtt_fixtures import start_mosquitto  # noqa: E402

GRACE_S = 1
RECONNECT_WITHIN_S = 5.0
BETWEEN_S = 3.0
"""Load flowing to a healthy hub between two faults."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--outage-s", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=2500.0)
    parser.add_argument("--broker-down-s", type=float, default=GRACE_S + 2.0)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, outbox, databases)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="smarthub-ordeal-"))
    broker = start_mosquitto(work / "mosquitto", persistence=True)
    influxd = start_influxd(work / "influxdb")
    hub = HubProcess(broker, influxd.url, "ordeal", work / "hub",
                     env={**broker_grace_env(GRACE_S), "SMARTHUB_LOG_LEVEL": "warning"})
    publisher: LoadPublisher | None = None
    try:
        hub.start()
        print(f"ordeal: {args.restarts} broker restarts, {args.kills} hub kills, InfluxDB stopped "
              f"{args.outage_s:.0f} s; {args.rate:.0f} msg/s QoS 1; {os.cpu_count()} cores; work dir {work}",
              flush=True)
        publisher = LoadPublisher(broker.host, broker.port, "ordeal", rate=args.rate).start()
        time.sleep(BETWEEN_S)
        rounds: list[BrokerRound] = []
        for i in range(args.restarts):
            done = restart_broker(broker, hub, kill=i % 2 == 1, down_s=args.broker_down_s, grace_s=GRACE_S)
            rounds.append(done)
            print(f"  restart {i + 1:>2}: {done.line()}", flush=True)
            if done.reconnect_s is None:
                print("  the hub did not come back: no further restarts", flush=True)
                break
            time.sleep(BETWEEN_S)
        for i in range(args.kills):
            print(f"  kill {i + 1:>2}: {kill_hub(hub, down_s=1.0).line()}", flush=True)
            time.sleep(BETWEEN_S)
        influxd.stop()
        stopped = time.monotonic()
        outbox = 0.0
        while time.monotonic() - stopped < args.outage_s:
            outbox = max(outbox, hub.metric("smarthub_outbox_points"))
            time.sleep(1)
        influxd.start()
        print(f"  InfluxDB stopped {args.outage_s:.0f} s: outbox peak {outbox:.0f} points", flush=True)
        time.sleep(BETWEEN_S)

        published = publisher.stop(timeout=60)
        print(f"\npublished {published.total} messages, {publisher.resent} resent after reconnects, "
              f"{published.unacked} never acknowledged by the broker", flush=True)
        try:
            hub.drained(timeout=300)
        except TimeoutError as exc:
            print(exc)
        report = check_stored(influxd.url, hub.db, published, timeout=300)

        times = [r.reconnect_s for r in rounds if r.reconnect_s is not None]
        back = len(rounds) == args.restarts and all(r.reconnect_s is not None and r.reconnect_s <= RECONNECT_WITHIN_S
                                                   for r in rounds)
        health = all(r.health_down and all(s == 503 for s in r.health_down) and r.health_after == 200
                     for r in rounds)
        print(f"hub back within {RECONNECT_WITHIN_S:.0f} s of the broker every time: {'yes' if back else 'NO'}"
              + (f" (max {max(times):.2f} s, mean {sum(times) / len(times):.2f} s)" if times else ""))
        print(f"health 503 while it could not receive, 200 after: {'yes' if health else 'NO'}")
        print(f"every published message stored exactly once: {'yes' if report.exactly_once else 'NO'}: "
              f"{report.summary()}")
        if not report.exactly_once:
            print(report.table())
        return 0 if back and health and report.exactly_once else 1
    finally:
        if publisher is not None:
            publisher.stop(timeout=0)
        hub.close()
        broker.stop()
        influxd.close()
        if args.keep:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
