"""Simulator scale: one `smarthub simulate` process driving N devices, each on its own MQTT connection.

Starts a real Mosquitto on a free port, runs the simulator against it and samples
the broker's connection count ($SYS) and the simulator's CPU and memory, then
prints how long the devices took to connect and the message rate they sustained.

    .venv/bin/python bench/simulate.py --devices 10000 --seconds 90
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.proc import cpu_seconds, rss_mb  # noqa: E402
from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER, start_mosquitto  # noqa: E402


class Watch:
    """Counts messages on the broker and reads its connected-client count from $SYS."""

    def __init__(self, host: str, port: int) -> None:
        self.messages = 0
        self.clients = 0
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.username_pw_set(DEVICE_USER, DEVICE_PASSWORD)
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe([("bench/#", 0), ("$SYS/broker/clients/connected", 0)])
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, m: paho.MQTTMessage) -> None:
        if m.topic.startswith("$SYS"):
            self.clients = int(m.payload)
        else:
            self.messages += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--speed", type=float, default=1.0)
    args = parser.parse_args()

    broker = start_mosquitto(Path(tempfile.mkdtemp(prefix="smarthub-sim-")))
    (broker.dir / "mosquitto.conf").open("a").write("sys_interval 1\n")
    broker.restart()
    watch = Watch(broker.host, broker.port)
    smarthub = Path(sys.executable).with_name("smarthub")
    sim = subprocess.Popen(
        [str(smarthub), "simulate", "--mqtt", broker.url(DEVICE_USER, DEVICE_PASSWORD), "--root", "bench",
         "--devices", str(args.devices), "--speed", str(args.speed), "--seed", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    all_connected_at = None
    print(f"{args.devices} devices, speed {args.speed}, {os.cpu_count()} cores; Mosquitto on :{broker.port}\n")
    print(f"{'t s':>5} {'connected':>10} {'msg/s':>8} {'sim CPU %':>9} {'sim RSS MB':>10}")
    last_messages, last_cpu, last_t = 0, 0.0, started
    try:
        while time.monotonic() - started < args.seconds and sim.poll() is None:
            time.sleep(5)
            now, cpu = time.monotonic(), cpu_seconds(sim.pid)
            rate = (watch.messages - last_messages) / (now - last_t)
            cpu_pct = 100 * (cpu - last_cpu) / (now - last_t)
            connected = watch.clients - 1  # less our own watcher
            print(f"{now - started:>5.0f} {connected:>10} {rate:>8.0f} {cpu_pct:>9.0f} {rss_mb(sim.pid):>10.0f}",
                  flush=True)
            if all_connected_at is None and watch.clients - 1 >= args.devices:
                all_connected_at = now - started
            last_messages, last_cpu, last_t = watch.messages, cpu, now
    finally:
        sim.terminate()
        sim.wait(60)
        broker.service.stop()
        threading.Event().wait(0.1)
    print(f"\nall {args.devices} connected after {all_connected_at:.0f} s" if all_connected_at
          else f"\nnot all {args.devices} devices connected within {args.seconds:.0f} s")


if __name__ == "__main__":
    main()
