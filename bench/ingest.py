"""Ingest benchmark: the highest sustained MQTT QoS 1 -> InfluxDB rate with zero loss.

Everything runs on this machine: a real Mosquitto, a real InfluxDB (Debian 1.6),
the hub as a `smarthub run` subprocess (validation and the durable outbox on, as
in production), and C publishers (`mosquitto_pub -l -q 1`, one per device)
fed pre-generated lines at a paced rate. For each target rate it prints what
the hub received, what reached InfluxDB, how far behind it fell, and its CPU
and memory. A rate counts as sustained when nothing is lost and the hub has
caught up within 2 s of the publishers stopping.

    .venv/bin/python bench/ingest.py                      # default ladder of rates
    .venv/bin/python bench/ingest.py --rates 5000 10000 --seconds 15 --devices 100
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.proc import cpu_seconds, rss_mb  # noqa: E402
from tests.support.influx_fixtures import start_influxd  # noqa: E402
from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER, start_mosquitto  # noqa: E402
from tests.support.processes import free_port, wait_until  # noqa: E402

TOKEN = "bench-token"


def metric(text: str, name: str) -> float:
    """Sum of all samples of a metric family in Prometheus text."""
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def payloads(device: int, count: int, base_ms: int) -> list[bytes]:
    """Realistic elevator telemetry; `ts` and `seq` unique per device so no point overwrites another."""
    lines = []
    for i in range(count):
        lines.append(orjson.dumps({
            "ts": base_ms + i, "seq": i, "floor": (i // 7) % 30 - 2, "direction": ("up", "down", "idle")[i % 3],
            "door": "closed", "running": True, "speed_mps": 1.75, "load_kg": 40.0 + i % 900,
            "occupied": bool(i % 2), "mode": "normal", "trips": 100_000 + i, "door_cycles": 200_000 + 2 * i,
        }))
    return lines


@dataclass
class Result:
    target: int
    sent: int
    published_s: float
    received: int
    stored: int
    catch_up_s: float
    hub_cpu_pct: float
    hub_rss_mb: float
    hub_cpu_s: float

    @property
    def cpu_us_per_msg(self) -> float:
        """Hub CPU (user + system) per message, from publishing start until caught up."""
        return 1e6 * self.hub_cpu_s / max(self.sent, 1)

    @property
    def rate(self) -> float:
        return self.sent / self.published_s

    @property
    def lost(self) -> int:
        return self.sent - self.stored

    @property
    def sustained(self) -> bool:
        return self.lost == 0 and self.catch_up_s <= 2.0


def stored_count(client: httpx.Client, influx_url: str, db: str) -> int:
    q = client.get(f"{influx_url}/query", params={"db": db, "q": 'SELECT count("seq") FROM "elevator"'}).json()
    series = q["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def run_rate(target: int, seconds: float, devices: int, broker, influx_url: str, api: str, hub_pid: int,  # type: ignore[no-untyped-def]
             root: str, db: str) -> Result:
    with httpx.Client() as client:
        accepted_before = int(metric(client.get(f"{api}/metrics").text, "smarthub_messages_accepted_total"))
        stored_before = stored_count(client, influx_url, db)
    per_device = int(target * seconds / devices)
    base_ms = int(time.time() * 1000) - 3_600_000  # in the past; runs are further apart than one run spans
    pubs = []
    for d in range(devices):
        topic = f"{root}/bench/elevator/e{d}/telemetry"
        pubs.append(subprocess.Popen(
            ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-u", DEVICE_USER, "-P", DEVICE_PASSWORD,
             "-q", "1", "-M", "100", "-l", "-t", topic, "-i", f"bench-{d}"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL))
    lines = [b"\n".join(payloads(d, per_device, base_ms)) + b"\n" for d in range(devices)]
    chunks = 50  # feed in 50 slices per second of the run, paced
    total_slices = max(1, int(seconds * chunks))
    cpu0, t0 = cpu_seconds(hub_pid), time.monotonic()
    split = [body.split(b"\n")[:-1] for body in lines]
    for s in range(total_slices):
        for d, p in enumerate(pubs):
            part = split[d][s * per_device // total_slices:(s + 1) * per_device // total_slices]
            if part:
                p.stdin.write(b"\n".join(part) + b"\n")  # type: ignore[union-attr]
        for p in pubs:
            p.stdin.flush()  # type: ignore[union-attr]
        delay = t0 + (s + 1) / chunks - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    for p in pubs:
        p.stdin.close()  # type: ignore[union-attr]
    for p in pubs:
        p.wait()
    published = time.monotonic()
    sent = per_device * devices

    expected_total = accepted_before + sent
    received = 0
    with httpx.Client() as client:
        deadline = published + 120
        while time.monotonic() < deadline:
            text = client.get(f"{api}/metrics").text
            received = int(metric(text, "smarthub_messages_accepted_total"))
            outbox = metric(text, "smarthub_outbox_points") + metric(text, "smarthub_pending_points")
            if received >= expected_total and outbox == 0:
                break
            time.sleep(0.05)
        caught_up = time.monotonic()
        cpu = cpu_seconds(hub_pid) - cpu0
        stored = stored_count(client, influx_url, db) - stored_before
    return Result(target, sent, published - t0, received - accepted_before, stored,
                  caught_up - published, 100 * cpu / (caught_up - t0), rss_mb(hub_pid), cpu)


def visible_latency(broker, api: str, root: str, samples: int = 20) -> list[float]:  # type: ignore[no-untyped-def]
    """Seconds from `mosquitto_pub` of one event until `/api/events` returns it (idle hub)."""
    out = []
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for i in range(samples):
            event_id = f"lat-{i}-{time.time_ns()}"
            started = time.perf_counter()
            subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-u", DEVICE_USER,
                            "-P", DEVICE_PASSWORD, "-q", "1", "-t", f"{root}/bench/elevator/lat/event",
                            "-m", orjson.dumps({"type": "fault", "code": "trapped_passenger", "active": True,
                                                "id": event_id}).decode()], check=True)
            while True:
                rows = client.get(f"{api}/api/events", params={"device": "lat", "limit": 1}).json()
                if rows and rows[0]["id"] == event_id:
                    break
                time.sleep(0.002)
            out.append(time.perf_counter() - started)
    return sorted(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=int, nargs="+", default=[2000, 5000, 8000, 10000, 12000, 15000, 20000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--protocol", choices=["3.1.1", "5"], default="3.1.1")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="smarthub-bench-"))
    broker = start_mosquitto(work / "mosquitto")
    influxd = start_influxd(work / "influxdb")
    http_port = free_port()
    root, db = "bench", "bench"
    env = os.environ | {
        "SMARTHUB_MQTT_URL": broker.url(), "SMARTHUB_INFLUX_URL": influxd.url, "SMARTHUB_INFLUX_DB": db,
        "SMARTHUB_ROOT": root, "SMARTHUB_HTTP": f"127.0.0.1:{http_port}", "SMARTHUB_DATA_DIR": str(work / "data"),
        "SMARTHUB_ADMIN_TOKEN": TOKEN, "SMARTHUB_MQTT_PROTOCOL": args.protocol, "SMARTHUB_LOG_LEVEL": "warning",
    }
    smarthub = Path(sys.executable).with_name("smarthub")
    hub = subprocess.Popen([str(smarthub), "run"], env=env, stderr=open(work / "hub.log", "wb"))
    api = f"http://127.0.0.1:{http_port}"
    try:
        wait_until(lambda: httpx.get(f"{api}/api/health").json()["broker"], timeout=20, what="hub")
        print(f"hub pid {hub.pid}; broker :{broker.port}; influxdb {influxd.url}; {args.devices} publishers; "
              f"{args.seconds:.0f} s per rate; MQTT {args.protocol}; {os.cpu_count()} cores\n")
        lat = visible_latency(broker, api, root)
        print(f"mosquitto_pub -> visible in /api/events (InfluxDB), {len(lat)} samples: "
              f"p50 {lat[len(lat) // 2] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms\n")
        print(f"{'target/s':>9} {'sent':>8} {'pub rate/s':>10} {'stored':>8} {'lost':>6} {'catch-up s':>10} "
              f"{'hub CPU %':>9} {'us/msg':>7} {'RSS MB':>7}  sustained")
        for rate in args.rates:
            r = run_rate(rate, args.seconds, args.devices, broker, influxd.url, api, hub.pid, root, db)
            print(f"{r.target:>9} {r.sent:>8} {r.rate:>10.0f} {r.stored:>8} {r.lost:>6} {r.catch_up_s:>10.2f} "
                  f"{r.hub_cpu_pct:>9.0f} {r.cpu_us_per_msg:>7.1f} {r.hub_rss_mb:>7.0f}  "
                  f"{'yes' if r.sustained else 'NO'}", flush=True)
            if r.lost or r.catch_up_s > 30:
                break
    finally:
        hub.terminate()
        hub.wait(30)
        broker.service.stop()
        influxd.stop()


if __name__ == "__main__":
    main()
