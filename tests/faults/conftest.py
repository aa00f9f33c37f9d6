"""Fixtures of the fault-injection tests: a broker of their own (persistent, restartable), the hub as a
subprocess, paced load, and a summary of each test's figures at the end of the run (CI has no `-s`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.hub_process import HubProcess, broker_grace_env
from tests.support.influx_fixtures import Influxd, start_influxd
from tests.support.load import LoadPublisher, Published, Report, check_stored, duplicate_examples
from tests.support.mqtt_fixtures import Broker, start_mosquitto

RATE = 2500
"""msg/s of QoS 1 load, the issue's figure"""
BROKER_GRACE_S = 1
HUB_ENV = broker_grace_env(BROKER_GRACE_S)

FIGURES: list[tuple[str, list[str]]] = []


@dataclass
class Figures:
    """Lines a fault test wants a reader of the CI log to see, pass or fail."""

    name: str
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join([self.name, *("  " + line for line in self.lines)])


@pytest.fixture
def figures(request: pytest.FixtureRequest, record_property: Callable[[str, object], None]) -> Iterator[Figures]:
    fig = Figures(request.node.nodeid)
    yield fig
    FIGURES.append((fig.name, fig.lines))
    record_property("figures", "\n".join(fig.lines))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault-injection figures")
    for name, lines in FIGURES:
        terminalreporter.write_line(name)
        for line in lines:
            terminalreporter.write_line("  " + line)


@pytest.fixture
def fault_broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto of this test's own, persistence on, so it can be killed without hurting other tests."""
    broker = start_mosquitto(tmp_path / "mosquitto", persistence=True)
    yield broker
    broker.stop()


@pytest.fixture
def fault_influxd(tmp_path: Path) -> Iterator[Influxd]:
    """An InfluxDB of this test's own, to stop and kill."""
    server = start_influxd(tmp_path / "influxdb")
    yield server
    server.close()


@pytest.fixture
def hub_process(fault_broker: Broker, root: str, tmp_path: Path) -> Iterator[Callable[[str], HubProcess]]:
    """Make (once) the hub subprocess for a given InfluxDB URL; killed at the end whatever happened."""
    made: list[HubProcess] = []

    def make(influx_url: str) -> HubProcess:
        hub = HubProcess(fault_broker, influx_url, root, tmp_path / "hub", env=HUB_ENV)
        made.append(hub)
        return hub

    yield make
    for hub in made:
        hub.close()


@pytest.fixture
def load(fault_broker: Broker, root: str) -> Iterator[Callable[[], LoadPublisher]]:
    """Start paced load on the test's broker; stopped at the end if the test did not."""
    started: list[LoadPublisher] = []

    def begin() -> LoadPublisher:
        publisher = LoadPublisher(fault_broker.host, fault_broker.port, root, rate=RATE).start()
        started.append(publisher)
        return publisher

    yield begin
    for publisher in started:
        publisher.stop(timeout=0)


def finish(publisher: LoadPublisher, hub: HubProcess, influx_url: str, figures: Figures) -> Report:
    """Stop the load, let the hub drain, count what InfluxDB holds; the figures get the totals."""
    published: Published = publisher.stop(timeout=30)
    figures.add(f"publisher: {published.total} messages, {publisher.resent} resent after reconnects, "
                f"{published.unacked} never acknowledged by the broker")
    started = time.monotonic()
    try:
        hub.drained(timeout=60)
    except TimeoutError as exc:
        figures.add(str(exc))
    report = check_stored(influx_url, hub.db, published, timeout=60)
    figures.add(f"stored after {time.monotonic() - started:.1f} s: {report.summary()}")
    bad = [r for r in report.rows if r.missing or r.duplicated]
    if bad:
        figures.add("devices off: " + ", ".join(f"{r.device} missing {r.missing} duplicated {r.duplicated}"
                                               for r in bad[:8]))
        twin = next((r for r in bad if r.duplicated), None)
        if twin is not None:
            for line in duplicate_examples(influx_url, hub.db, published, twin.device):
                figures.add("stored twice: " + line)
    return report
