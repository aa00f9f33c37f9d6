"""Alert latency: a fault published to Mosquitto -> the alert on the API, on MQTT and at a webhook.

The hub runs as `smarthub run` on a real Mosquitto and InfluxDB, with
background telemetry at `--background` msg/s from C publishers. Each of
`--faults` trapped-passenger faults (on distinct elevators) is timed from the
publish until (a) `GET /api/alerts` lists it, (b) its retained alert topic
arrives at an MQTT subscriber, (c) a local webhook receives it.

    .venv/bin/python bench/alerts.py --faults 100 --background 1000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as paho

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.influx_fixtures import start_influxd  # noqa: E402
from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER, start_mosquitto  # noqa: E402
from tests.support.processes import free_port, wait_until  # noqa: E402

TOKEN = "bench-token"
ROOT = "bench"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Arrivals:
    """When each device's alert was first seen on a path."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()

    def seen(self, device: str) -> None:
        with self.lock:
            self.at.setdefault(device, time.perf_counter())


def webhook(arrivals: Arrivals) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if body["state"] == "open":
                arrivals.seen(body["device"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def background(broker, rate: int, stop: threading.Event) -> None:  # type: ignore[no-untyped-def]
    """`rate` msg/s of elevator telemetry from 10 C publishers, paced in 20 ms slices."""
    pubs = [subprocess.Popen(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-u", DEVICE_USER,
                              "-P", DEVICE_PASSWORD, "-q", "1", "-l", "-t", f"{ROOT}/bench/elevator/bg{i}/telemetry"],
                             stdin=subprocess.PIPE) for i in range(10)]
    per_slice = max(1, rate // 10 // 50)
    line = orjson.dumps({"floor": 3, "running": True, "direction": "up", "door": "closed", "load_kg": 300.0}) + b"\n"
    started, n = time.monotonic(), 0
    while not stop.is_set():
        for p in pubs:
            p.stdin.write(line * per_slice)  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
        n += 1
        time.sleep(max(0.0, started + n * 0.02 - time.monotonic()))
    for p in pubs:
        p.stdin.close()  # type: ignore[union-attr]
        p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", type=int, default=100)
    parser.add_argument("--background", type=int, default=1000, help="background telemetry msg/s")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="smarthub-alerts-"))
    broker = start_mosquitto(work / "mosquitto")
    influxd = start_influxd(work / "influxdb")
    hook_arrivals, mqtt_arrivals = Arrivals(), Arrivals()
    hook = webhook(hook_arrivals)
    port = free_port()
    env = os.environ | {
        "SMARTHUB_MQTT_URL": broker.url(), "SMARTHUB_INFLUX_URL": influxd.url, "SMARTHUB_ROOT": ROOT,
        "SMARTHUB_HTTP": f"127.0.0.1:{port}", "SMARTHUB_DATA_DIR": str(work / "data"), "SMARTHUB_ADMIN_TOKEN": TOKEN,
        "SMARTHUB_WEBHOOKS": f"http://127.0.0.1:{hook.server_address[1]}/", "SMARTHUB_LOG_LEVEL": "warning",
    }
    hub = subprocess.Popen([str(Path(sys.executable).with_name("smarthub")), "run"], env=env,
                           stderr=open(work / "hub.log", "wb"))
    api = f"http://127.0.0.1:{port}"
    sub = paho.Client(paho.CallbackAPIVersion.VERSION2)
    sub.username_pw_set(DEVICE_USER, DEVICE_PASSWORD)
    sub.on_message = lambda c, u, m: m.payload and mqtt_arrivals.seen(orjson.loads(m.payload)["device"])
    sub.connect(broker.host, broker.port)
    sub.subscribe(f"{ROOT}/+/alerts/#", qos=1)
    sub.loop_start()
    stop = threading.Event()
    try:
        wait_until(lambda: httpx.get(f"{api}/api/health").json()["broker"], timeout=20, what="hub")
        bg = threading.Thread(target=background, args=(broker, args.background, stop), daemon=True)
        bg.start()
        time.sleep(3)
        pub = paho.Client(paho.CallbackAPIVersion.VERSION2)
        pub.username_pw_set(DEVICE_USER, DEVICE_PASSWORD)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        api_ms, mqtt_ms, hook_ms = [], [], []
        with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            for i in range(args.faults):
                device = f"el{i}"
                payload = orjson.dumps({"type": "fault", "code": "trapped_passenger", "active": True, "id": f"f{i}"})
                started = time.perf_counter()
                pub.publish(f"{ROOT}/bench/elevator/{device}/event", payload, qos=1)
                while not client.get("/api/alerts", params={"device": device}).json():
                    time.sleep(0.002)
                api_ms.append((time.perf_counter() - started) * 1000)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not (device in mqtt_arrivals.at and device in hook_arrivals.at):
                    time.sleep(0.002)
                mqtt_ms.append((mqtt_arrivals.at.get(device, float("inf")) - started) * 1000)
                hook_ms.append((hook_arrivals.at.get(device, float("inf")) - started) * 1000)
        print(f"{args.faults} trapped-passenger faults, {args.background} msg/s of background telemetry, "
              f"{os.cpu_count()} cores; Mosquitto, InfluxDB 1.6 and the hub on this machine\n")
        print(f"{'fault -> alert on':<22} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for name, values in (("GET /api/alerts", api_ms), ("MQTT retained topic", mqtt_ms), ("webhook POST", hook_ms)):
            print(f"{name:<22} {percentile(values, 50):>8.1f} {percentile(values, 99):>8.1f} {max(values):>8.1f}")
        pub.loop_stop()
    finally:
        stop.set()
        sub.loop_stop()
        hub.terminate()
        hub.wait(30)
        hook.shutdown()
        broker.service.stop()
        influxd.stop()


if __name__ == "__main__":
    main()
