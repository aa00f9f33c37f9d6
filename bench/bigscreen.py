"""Is the big screen smooth for a large community? Headless Chromium on a hub fed by 2,000 devices.

`smarthub simulate` runs the community against a real Mosquitto (its registry, written with
`--registry-out`, is the hub's SMARTHUB_REGISTRY), `smarthub run` is the hub, and Debian's Chromium
shows the big screen at 1920x1080. Over `--seconds` it reports what reached the page, how often and
how long the screen redrew, frames per second, long tasks (>50 ms on the main thread) and JS heap.

    .venv/bin/python bench/bigscreen.py --devices 2000 --speed 10 --seconds 60
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.proc import cpu_seconds, rss_mb  # noqa: E402
from tests.support.browser import CHROMIUM_ARGS  # noqa: E402
from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER, start_mosquitto  # noqa: E402
from tests.support.processes import free_port, wait_until  # noqa: E402

TOKEN = "bench-token"
SMARTHUB = str(Path(sys.executable).with_name("smarthub"))
PROBE = """() => {
  // Frames and main-thread stalls, counted from now on.
  window.bench = {frames: 0, longTasks: 0, longMs: 0};
  const frame = () => { window.bench.frames++; requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
  new PerformanceObserver((list) => { for (const e of list.getEntries()) { window.bench.longTasks++;
    window.bench.longMs += e.duration; } }).observe({type: "longtask", buffered: false});
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--speed", type=float, default=10, help="simulated time runs this many times faster")
    parser.add_argument("--seconds", type=float, default=60, help="how long to watch the screen")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="smarthub-bigscreen-"))
    broker = start_mosquitto(work / "mosquitto")
    registry = work / "community.toml"
    port = free_port()
    sim = subprocess.Popen([SMARTHUB, "simulate", "--mqtt", broker.url(DEVICE_USER, DEVICE_PASSWORD), "--devices",
                            str(args.devices), "--speed", str(args.speed), "--registry-out", str(registry)],
                           stdout=subprocess.DEVNULL, stderr=open(work / "simulate.log", "wb"))
    wait_until(registry.exists, timeout=30, what="the community's registry")
    env = os.environ | {"SMARTHUB_MQTT_URL": broker.url(), "SMARTHUB_HTTP": f"127.0.0.1:{port}",
                        "SMARTHUB_DATA_DIR": str(work / "data"), "SMARTHUB_ADMIN_TOKEN": TOKEN,
                        "SMARTHUB_REGISTRY": str(registry), "SMARTHUB_LOG_LEVEL": "warning"}
    hub = subprocess.Popen([SMARTHUB, "run"], env=env, stderr=open(work / "hub.log", "wb"))
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        wait_until(lambda: httpx.get(f"{base}/api/health").json()["broker"], timeout=30, what="the hub")
        started = time.monotonic()
        wait_until(lambda: sum(d["online"] for d in httpx.get(f"{base}/api/devices", headers=auth,
                                                                   timeout=30).json()) >= args.devices,
                   timeout=180, interval=2, what=f"{args.devices} devices online")
        print(f"{args.devices} devices online after {time.monotonic() - started:.0f} s")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            loaded = time.monotonic()
            page.goto(f"{base}/?token={TOKEN}")
            page.wait_for_function("window.screenState && window.screenState.ready", timeout=120_000)
            print(f"screen complete {time.monotonic() - loaded:.1f} s after opening it")
            page.evaluate(PROBE)
            before = page.evaluate("({...window.screenState})")
            hub_cpu = cpu_seconds(hub.pid)
            time.sleep(args.seconds)
            after = page.evaluate("({...window.screenState})")
            bench = page.evaluate("window.bench")
            heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize / 1048576 : -1")
            page.screenshot(path=str(work / "bigscreen.png"))
            browser.close()
        s = args.seconds
        renders = after["renders"] - before["renders"]
        render_ms = after["renderMsTotal"] - before["renderMsTotal"]
        print(f"\nover {s:.0f} s at speed {args.speed:g}, {os.cpu_count()} cores shared by Mosquitto, the simulators, "
              "the hub and Chromium:")
        messages = after["liveMessages"] - before["liveMessages"]
        live_ms = after["liveMs"] - before["liveMs"]
        print(f"  live messages to the page   {messages / s:8.1f} /s")
        print(f"  handling them               {live_ms / max(1, messages):8.2f} ms each,"
              f" {live_ms / (s * 10):.1f} % of the main thread")
        print(f"  redraws                     {renders / s:8.1f} /s (at most 2 by design)")
        print(f"  redraw time                 {render_ms / max(renders, 1):8.1f} ms mean, "
              f"{after['renderMsMax']:.1f} ms max since load")
        per_panel = {k: v - before["panelMs"].get(k, 0) for k, v in after["panelMs"].items()}
        slowest = sorted(per_panel.items(), key=lambda kv: -kv[1])[:4]
        print("  redraw time by panel        " + ", ".join(f"{k} {v / max(renders, 1):.1f} ms" for k, v in slowest))
        print(f"  main thread busy redrawing  {render_ms / (s * 10):8.1f} %")
        print(f"  frames                      {bench['frames'] / s:8.1f} /s")
        print(f"  long tasks (>50 ms)         {bench['longTasks']:8d}  ({bench['longMs']:.0f} ms in all)")
        print(f"  JS heap                     {heap:8.1f} MB")
        print(f"  hub                         {(cpu_seconds(hub.pid) - hub_cpu) / s * 100:8.1f} % of a core, "
              f"{rss_mb(hub.pid):.0f} MB RSS")
        print(f"  page errors                 {len(errors):8d}  {errors[:3]}")
        print(f"  screenshot                  {work / 'bigscreen.png'}")
    finally:
        for proc in (sim, hub):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.service.stop()


if __name__ == "__main__":
    main()
