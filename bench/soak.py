"""Soak: hours-long behaviour in minutes. QoS 1 load for N minutes with a broker restart and a store outage.

A real Mosquitto (persistence on), a real InfluxDB 1.6 and the hub as a
`smarthub run` subprocess, fed by tests/support/load.py's at-least-once
publisher (elevator telemetry with `ts`/`seq`, access events with an `id` and
no `ts`). At 40 % of the run the broker is restarted (SIGTERM); from 50 % InfluxDB
is stopped for `--outage-s` (default 120 s). Every second it samples the hub's
RSS, its outbox depth (`smarthub_outbox_points`) and the end-to-end lag: the age
of the newest message of one elevator that InfluxDB holds (its `seq` read back,
against the time the publisher first sent that `seq`), so lag includes broker,
hub, outbox and store. It prints the samples, plots them to a PNG, says whether
RSS stayed flat over the last two thirds of the run, and ends with the
exactly-once count of every published message.

    .venv/bin/pip install -e '.[bench]'                  # matplotlib, for the plot
    .venv/bin/python bench/soak.py                       # 30 minutes at 5,000 msg/s
    .venv/bin/python bench/soak.py --minutes 3 --outage-s 30 --png soak.png

RSS is flat when the straight line fitted to it over the last two thirds
rises by less than max(2 x the spread of the samples around that line, 2 MiB)
over that window: growth beyond the noise is a leak.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.proc import rss_mb  # noqa: E402
from tests.support.hub_process import HubProcess  # noqa: E402
from tests.support.influx_fixtures import start_influxd  # noqa: E402
from tests.support.load import LoadPublisher, check_stored, last_seq  # noqa: E402
from tests.support.mqtt_fixtures import start_mosquitto  # noqa: E402

FLAT_FLOOR_MB = 2.0


@dataclass(frozen=True)
class Sample:
    t: float
    """seconds since the load started"""
    rss_mb: float
    outbox: float
    lag_s: float | None


@dataclass(frozen=True)
class Flatness:
    slope_mb_per_min: float
    growth_mb: float
    noise_mb: float

    @property
    def flat(self) -> bool:
        return self.growth_mb <= max(2 * self.noise_mb, FLAT_FLOOR_MB)


def flatness(samples: list[Sample]) -> Flatness:
    """Least-squares line through RSS over the last two thirds; its rise and the residuals' spread."""
    tail = [s for s in samples[len(samples) // 3:] if s.rss_mb == s.rss_mb]  # NaN: the hub did not answer
    xs, ys = [s.t for s in tail], [s.rss_mb for s in tail]
    if len(tail) < 3:
        return Flatness(0.0, 0.0, 0.0)
    slope, intercept = statistics.linear_regression(xs, ys)
    noise = statistics.pstdev([y - (slope * x + intercept) for x, y in zip(xs, ys, strict=True)])
    return Flatness(slope * 60, slope * (xs[-1] - xs[0]), noise)


class Sampler(threading.Thread):
    """Once a second: hub RSS, outbox depth, and the age of the newest stored probe message."""

    def __init__(self, hub: HubProcess, influx_url: str, publisher: LoadPublisher) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.hub, self.influx_url, self.publisher = hub, influx_url, publisher
        self.samples: list[Sample] = []
        self.halt = threading.Event()
        self._stored_seq: int | None = None

    def lag(self) -> float | None:
        probe = self.publisher.probe
        try:
            seq = last_seq(self.influx_url, self.hub.db, self.publisher.site, probe.device)
            if seq is not None:
                self._stored_seq = seq
        except Exception:  # noqa: BLE001 - store down: the newest stored message only gets older
            pass
        if self._stored_seq is None or probe.sent_at is None:
            return None
        return time.time() - probe.sent_at[self._stored_seq]

    def run(self) -> None:
        t0 = self.publisher.t0
        while not self.halt.wait(1.0 - (time.time() - t0) % 1.0):
            try:
                rss = rss_mb(self.hub.pid) if self.hub.alive() else float("nan")
                outbox = self.hub.metric("smarthub_outbox_points")
            except Exception:  # noqa: BLE001 - a hub that does not answer is a gap in the plot, not the end
                rss, outbox = float("nan"), float("nan")
            self.samples.append(Sample(time.time() - t0, rss, outbox, self.lag()))


def plot(samples: list[Sample], marks: list[tuple[float, float, str]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.t / 60 for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    series = [([s.rss_mb for s in samples], "hub RSS (MiB)"), ([s.outbox for s in samples], "outbox (points)"),
              ([s.lag_s if s.lag_s is not None else float("nan") for s in samples], "end-to-end lag (s)")]
    for ax, (values, label) in zip(axes, series, strict=True):
        ax.plot(minutes, values, linewidth=1)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        for start, end, what in marks:
            ax.axvspan(start / 60, max(end, start + 1) / 60, color="tab:red", alpha=0.15)
            if ax is axes[0]:
                ax.annotate(what, (start / 60, 1.0), xycoords=("data", "axes fraction"), fontsize=8,
                            va="bottom", ha="left")
    axes[0].set_ylim(bottom=0)
    axes[-1].set_xlabel("minutes")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=5000.0, help="messages per second in all")
    parser.add_argument("--elevators", type=int, default=16)
    parser.add_argument("--doors", type=int, default=4)
    parser.add_argument("--outage-s", type=float, default=120.0, help="InfluxDB stopped this long, from mid-run")
    parser.add_argument("--png", type=Path, default=Path("soak.png"))
    parser.add_argument("--print-every", type=int, default=10, help="print every Nth sample (all go in the plot)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, outbox, databases)")
    args = parser.parse_args()
    run_s = args.minutes * 60
    if args.outage_s > run_s * 0.4:
        parser.error(f"--outage-s {args.outage_s:.0f} does not fit in the middle of a {run_s:.0f} s run")

    work = Path(tempfile.mkdtemp(prefix="smarthub-soak-"))
    broker = start_mosquitto(work / "mosquitto", persistence=True)
    influxd = start_influxd(work / "influxdb")
    hub = HubProcess(broker, influxd.url, "soak", work / "hub", env={"SMARTHUB_LOG_LEVEL": "warning"})
    publisher: LoadPublisher | None = None
    sampler: Sampler | None = None
    marks: list[tuple[float, float, str]] = []
    try:
        hub.start()
        print(f"soak: {args.minutes:g} min at {args.rate:.0f} msg/s ({args.elevators} elevators, {args.doors} doors);"
              f" broker restart at 40 %, InfluxDB stopped {args.outage_s:.0f} s from 50 %; {os.cpu_count()} cores;"
              f" work dir {work}", flush=True)
        publisher = LoadPublisher(broker.host, broker.port, "soak", rate=args.rate, elevators=args.elevators,
                                  doors=args.doors, probe=True).start()
        sampler = Sampler(hub, influxd.url, publisher)
        sampler.start()
        print(f"{'t s':>6} {'RSS MiB':>8} {'outbox':>8} {'lag s':>7} {'sent':>9}", flush=True)
        printed = 0
        restart_at, outage_at = 0.4 * run_s, 0.5 * run_s
        restarted = outage_started = outage_ended = False
        while (now := time.time() - publisher.t0) < run_s:
            if not restarted and now >= restart_at:
                restarted = True
                started = now
                broker.restart(down_s=1.0)
                marks.append((started, time.time() - publisher.t0, "broker restart"))
            if not outage_started and now >= outage_at:
                outage_started = True
                influxd.stop()
                outage_from = now
            if outage_started and not outage_ended and now >= outage_at + args.outage_s:
                outage_ended = True
                influxd.start()
                marks.append((outage_from, time.time() - publisher.t0, "InfluxDB stopped"))
            for s in sampler.samples[printed:]:
                if int(round(s.t)) % args.print_every == 0:
                    lag = f"{s.lag_s:7.2f}" if s.lag_s is not None else "      -"
                    print(f"{s.t:6.0f} {s.rss_mb:8.1f} {s.outbox:8.0f} {lag} {publisher.generated:>9}", flush=True)
            printed = len(sampler.samples)
            time.sleep(0.2)
        if outage_started and not outage_ended:
            influxd.start()
        published = publisher.stop(timeout=60)
        sampler.halt.set()
        sampler.join(5)
        samples = sampler.samples
        print(f"\npublished {published.total} messages ({published.total / run_s:.0f}/s), {publisher.resent} resent "
              f"after reconnects, {published.unacked} never acknowledged", flush=True)
        flat = flatness(samples)  # printed before the count, which a busy store may fail
        lags = [s.lag_s for s in samples if s.lag_s is not None]
        print(f"RSS over the last two thirds: {flat.slope_mb_per_min:+.3f} MiB/min, {flat.growth_mb:+.1f} MiB over the"
              f" window, noise {flat.noise_mb:.1f} MiB -> {'flat' if flat.flat else 'GROWING'}"
              f" (first {samples[0].rss_mb:.0f} MiB, max {max(s.rss_mb for s in samples):.0f} MiB,"
              f" last {samples[-1].rss_mb:.0f} MiB)")
        print(f"outbox peak {max(s.outbox for s in samples):.0f} points; end-to-end lag median "
              f"{statistics.median(lags):.2f} s, max {max(lags):.1f} s" if lags else "no lag samples", flush=True)
        hub.drained(timeout=600)
        report = check_stored(influxd.url, hub.db, published, timeout=600)
        print(f"exactly once: {'yes' if report.exactly_once else 'NO'}: {report.summary()}")
        if not report.exactly_once:
            print(report.table())
        plot(samples, marks, args.png,
             f"smarthub soak: {args.rate:.0f} msg/s, {args.minutes:g} min; RSS {'flat' if flat.flat else 'GROWING'}; "
             f"exactly once: {'yes' if report.exactly_once else 'NO'}")
        print(f"plot: {args.png}")
    finally:
        if sampler is not None:
            sampler.halt.set()
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
    main()
