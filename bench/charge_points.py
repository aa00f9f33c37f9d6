"""OCPP capacity: how many charge points one `smarthub run` holds (issue 13 target: 2,000 connected with
MeterValues and Heartbeat every 60 s, at most 30% of a core and 300 MB RSS), and the allocator's time for 500.

    .venv/bin/python bench/charge_points.py [--charge-points N] [--clients 2] [--steady-s 60]

Everything is real: a Mosquitto, the hub as a subprocess (embedded store, the durable outbox on), and one or two
client processes of lightweight OCPP-J charge points (plain `websockets` frames, one coroutine each: the `ocpp`
library's ChargePoint would cost the clients more CPU than the hub under test). Each charge point authenticates
with its own password (security profile 1), sends BootNotification, answers the hub's GetConfiguration, then
sends a Heartbeat and a MeterValues every 60 s at a random phase, so the load is spread as real chargers' would
be. The hub's CPU and RSS are read from /proc over a steady window once every charge point is connected.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # this file must not shadow `ocpp`
sys.path.insert(0, str(HERE.parent))

from bench.proc import cpu_seconds, rss_mb  # noqa: E402

SITE = "bench"
INTERVAL_S = 60.0


def hub_call_answer(frame: list[object]) -> list[object]:
    """A charger's answer to the hub's CALL: its configuration (W profiles), else NotSupported."""
    if frame[2] == "GetConfiguration":
        return [3, frame[1], {"configurationKey": [
            {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Power"}]}]
    return [4, frame[1], "NotSupported", f"{frame[2]} is not simulated", {}]


async def charge_point(url: str, cp: str, password: str, counts: dict[str, int], interval_s: float) -> None:
    """One charger: boot, then heartbeat and meter values every interval (its phase random), forever."""
    from websockets.asyncio.client import connect

    auth = {"Authorization": "Basic " + base64.b64encode(f"{cp}:{password}".encode()).decode()}
    await asyncio.sleep(random.uniform(0, 5))  # chargers do not all dial at the same instant
    for attempt in range(5):
        try:
            async with connect(f"{url}/ocpp/{SITE}/{cp}", subprotocols=["ocpp1.6"], additional_headers=auth,
                               open_timeout=60, ping_interval=None) as ws:
                serial = 0

                async def ask(action: str, payload: dict[str, object]) -> None:
                    nonlocal serial
                    serial += 1
                    unique_id = f"{cp}-{serial}"
                    await ws.send(orjson.dumps([2, unique_id, action, payload]).decode())
                    while True:
                        frame = orjson.loads(await ws.recv())
                        if frame[0] == 2:  # the hub's own CALL (its GetConfiguration after the boot)
                            await ws.send(orjson.dumps(hub_call_answer(frame)).decode())
                        elif frame[1] == unique_id:
                            counts["answered" if frame[0] == 3 else "errors"] += 1
                            return

                await ask("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "AC7"})
                counts["connected"] += 1
                try:
                    await asyncio.sleep(random.uniform(0, interval_s))
                    energy = random.uniform(100, 5000)
                    while True:
                        await ask("Heartbeat", {})
                        energy += 0.1
                        await ask("MeterValues", {"connectorId": 1, "meterValue": [{
                            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sampledValue": [
                                {"value": f"{energy:.3f}", "measurand": "Energy.Active.Import.Register",
                                 "unit": "kWh"},
                                {"value": "7000", "measurand": "Power.Active.Import", "unit": "W"}]}]})
                        await asyncio.sleep(interval_s)
                finally:
                    counts["connected"] -= 1
        except (OSError, TimeoutError, Exception):  # noqa: BLE001 - a refused dial counts and is tried again
            counts["failed_dials"] += 1
            await asyncio.sleep(1 + attempt)


async def clients(url: str, accounts: list[tuple[str, str]], interval_s: float) -> None:
    """A client process: its charge points, and a count line on stdout every second for the parent."""
    counts = {"connected": 0, "answered": 0, "errors": 0, "failed_dials": 0}
    tasks = [asyncio.create_task(charge_point(url, cp, pw, counts, interval_s)) for cp, pw in accounts]
    while True:
        print(json.dumps(counts), flush=True)
        await asyncio.sleep(1)
        if all(t.done() for t in tasks):
            return


class Client:
    """A client process and the last counts it printed."""

    def __init__(self, url: str, accounts: list[tuple[str, str]], interval_s: float, work: Path,
                 index: int) -> None:
        spec = work / f"accounts-{index}.json"
        spec.write_text(json.dumps(accounts))
        self.proc = subprocess.Popen([sys.executable, __file__, "--client", str(spec), "--url", url,
                                      "--interval-s", str(interval_s)], stdout=subprocess.PIPE, text=True)
        self.counts: dict[str, int] = {}
        self.reader = asyncio.get_running_loop().run_in_executor(None, self._read)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.counts = json.loads(line)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def total(cs: list[Client], key: str) -> int:
    return sum(c.counts.get(key, 0) for c in cs)


async def run(args: argparse.Namespace) -> None:
    from hub.credentials import Credentials, mosquitto_hash
    from tests.support.hub_process import HubProcess
    from tests.support.mqtt_fixtures import start_mosquitto

    work = Path(tempfile.mkdtemp(prefix="bench-ocpp-"))
    broker = start_mosquitto(work / "mosquitto")
    env = {"SMARTHUB_LOG_LEVEL": "warning", "PYTHONPATH": str(HERE.parent)}  # this checkout's hub and adapters
    hub = HubProcess(broker, None, "benchocpp", work / "hub", env=env)
    (work / "hub" / "data").mkdir(parents=True)
    credentials = Credentials(work / "hub" / "data")
    accounts = [(f"cp-{i:05d}", f"pw-{i:05d}-{random.randrange(10**9)}") for i in range(args.charge_points)]
    rows = [(SITE, cp, mosquitto_hash(pw)) for cp, pw in accounts]
    credentials.db.write(lambda tx: tx.executemany(  # one transaction: `device add` 2,000 times over takes minutes
        "INSERT INTO devices (site, kind, device, hash) VALUES (?, 'charger', ?, ?)", rows))
    credentials.close()
    hub.start()
    url = f"ws://127.0.0.1:{hub.port}"
    share = -(-len(accounts) // args.clients)
    procs = [Client(url, accounts[i * share:(i + 1) * share], args.interval_s, work, i) for i in range(args.clients)]
    try:
        started = time.monotonic()
        while total(procs, "connected") < args.charge_points and time.monotonic() - started < args.connect_s:
            await asyncio.sleep(1)
        print(f"{total(procs, 'connected')} of {args.charge_points} charge points connected after "
              f"{time.monotonic() - started:.0f} s ({total(procs, 'failed_dials')} failed dials)", flush=True)
        await asyncio.sleep(min(args.interval_s, 30))  # the boot burst's writes settle
        cpu0, answered0, t0 = cpu_seconds(hub.pid), total(procs, "answered"), time.monotonic()
        peak_rss = 0.0
        while time.monotonic() - t0 < args.steady_s:
            await asyncio.sleep(1)
            peak_rss = max(peak_rss, rss_mb(hub.pid))
        elapsed = time.monotonic() - t0
        cpu_pct = (cpu_seconds(hub.pid) - cpu0) / elapsed * 100
        answered = total(procs, "answered") - answered0
        hub_side = int(hub.metric("smarthub_ocpp_connected"))
        print(f"steady {elapsed:.0f} s: {total(procs, 'connected')} connected ({hub_side} by the hub's count), "
              f"{answered / elapsed:.1f} requests/s "
              f"answered ({total(procs, 'errors')} CallErrors), hub CPU {cpu_pct:.1f}% of a core "
              f"(target <= 30%), RSS peak {peak_rss:.0f} MB (target <= 300 MB)", flush=True)
    finally:
        for proc in procs:
            proc.stop()
        hub.stop()
        hub.close()
        broker.stop()
    subprocess.run([sys.executable, str(Path(__file__).with_name("allocator.py")), "--chargers", "500"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charge-points", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--steady-s", type=float, default=60.0)
    parser.add_argument("--connect-s", type=float, default=180.0, help="how long all may take to connect")
    parser.add_argument("--interval-s", type=float, default=INTERVAL_S)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(clients(args.url, [tuple(a) for a in json.loads(Path(args.client).read_text())],
                            args.interval_s))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
