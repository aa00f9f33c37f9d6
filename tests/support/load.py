"""At-least-once QoS 1 load as devices publish it, and the exactly-once check against InfluxDB.

`LoadPublisher` drives elevators (telemetry with a unique `ts` and `seq` per
device) and door controllers (`access` events with a unique `id` and no `ts`,
the case where a redelivered copy gets a new receive time and so a new point
time) from one thread per MQTT connection, paced to a target rate. It uses only
paho-mqtt's public API and keeps its own record of every message not yet
PUBACKed: when a connection is lost that record, not paho's queue (the client
object is thrown away), is published again on the next connection, oldest
first. So nothing is lost on the publisher's side, whatever happens to the
broker; a message may reach the broker twice, as QoS 1 allows.

What stays unavoidable when the *broker* is SIGKILLed: a message the broker has
PUBACKed to the publisher is its responsibility alone. Mosquitto keeps its
queues in memory and writes them to disk every `autosave_interval` seconds (the
fault fixtures use 1 s), so a message it acknowledged after its last save and
had not yet written to the hub's socket is gone, and nobody can resend it. With
the hub keeping up (QoS 1 in flight to the hub, nothing queued) that window is
the broker's own forwarding, well under a millisecond per message; a hub that
falls behind widens it to everything queued since the last save. A restarted
broker also redelivers what its last save still held in flight to the hub:
duplicates the hub has to recognise. A SIGTERM saves everything, so there no
loss is acceptable.

`check_stored` counts what InfluxDB holds per device over InfluxQL: rows
against distinct `seq` (telemetry) or distinct `id` (events). A redelivered
message stored under a second point time shows as `duplicated`; a message
never stored as `missing`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import httpx
import orjson
import paho.mqtt.client as paho

from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER

Channel = Literal["telemetry", "event"]
MAX_INFLIGHT = 1000
"""QoS 1 messages a connection has out before it waits (paho's window and ours)."""
CONNECT_TIMEOUT_S = 3.0
BURST = 500
"""Most messages one connection publishes between two network-loop passes (catch-up after an outage)."""


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    device: str
    number: int
    """`seq` of telemetry, the number in the event `id`: unique per device"""


@dataclass(slots=True)
class Stream:
    """One device's messages: generated on a virtual clock, so a paused connection catches up later."""

    site: str
    kind: str
    device: str
    channel: Channel
    rate: float
    root: str
    count: int = 0
    last_ts: int = 0
    sent_at: list[float] | None = None
    """Wall time each `seq` was first published (only where asked for: the lag probe)."""

    @property
    def topic(self) -> str:
        return f"{self.root}/{self.site}/{self.kind}/{self.device}/{self.channel}"

    def next(self, t0_ms: int) -> Message:
        n = self.count
        self.count += 1
        if self.channel == "telemetry":
            ts = max(t0_ms + int(n * 1000 / self.rate), self.last_ts + 1)
            self.last_ts = ts
            body = {"ts": ts, "seq": n, "floor": (n // 7) % 30 - 2, "direction": ("up", "down", "idle")[n % 3],
                    "door": "closed", "running": True, "speed_mps": 1.75, "load_kg": 40.0 + n % 900,
                    "occupied": bool(n % 2), "mode": "normal", "trips": 100_000 + n, "door_cycles": 200_000 + 2 * n}
        else:  # no ts on purpose: the hub stamps the receive time
            body = {"type": "access", "id": f"{self.device}-{n}", "method": "card", "subject": f"c-{n % 97}",
                    "result": "granted"}
        if self.sent_at is not None:
            self.sent_at.append(time.time())
        return Message(self.topic, orjson.dumps(body), self.device, n)


class _Link(threading.Thread):
    """One device connection: publishes its streams on schedule, resends what a lost connection left unacked.

    Everything (publishing, paho's network loop, callbacks) runs on this one
    thread, so the bookkeeping needs no lock.
    """

    def __init__(self, name: str, host: str, port: int, streams: list[Stream], t0: float) -> None:
        super().__init__(name=f"load-{name}", daemon=True)
        self.client_id = name
        self.host, self.port = host, port
        self.streams = streams
        self.t0 = t0
        self.finishing = threading.Event()
        self.halt = threading.Event()
        self.pending: dict[int, Message] = {}
        """mid -> message published on the current connection and not yet PUBACKed"""
        self.resend: deque[Message] = deque()
        self.client: paho.Client | None = None
        self.connected = False
        self.connects = 0
        self.acked = 0
        self.resent = 0
        self.errors: list[str] = []

    @property
    def outstanding(self) -> int:
        return len(self.pending) + len(self.resend)

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                if self.finishing.is_set() and not self.outstanding:
                    break
                if not self.connected and not self._connect():
                    time.sleep(0.1)
                    continue
                self._publish_due()
                assert self.client is not None
                if self.client.loop(timeout=0.005) != paho.MQTT_ERR_SUCCESS or not self.connected:
                    self._lost()
        finally:
            if self.client is not None:
                self.client.disconnect()
                self.client.loop(timeout=0.1)

    def _connect(self) -> bool:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        client.username_pw_set(DEVICE_USER, DEVICE_PASSWORD)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        try:
            client.connect(self.host, self.port, keepalive=10)
        except OSError:
            return False
        self.client = client
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not self.connected and time.monotonic() < deadline:
            if client.loop(timeout=0.05) != paho.MQTT_ERR_SUCCESS:
                break
        if not self.connected:
            self._lost()
            return False
        self.connects += 1
        return True

    def _on_connect(self, _c: paho.Client, _u: object, _f: object, reason: paho.ReasonCode, _p: object) -> None:
        self.connected = not reason.is_failure

    def _on_disconnect(self, _c: paho.Client, _u: object, _f: object, _r: object, _p: object) -> None:
        self.connected = False

    def _on_publish(self, _c: paho.Client, _u: object, mid: int, _r: object, _p: object) -> None:
        if self.pending.pop(mid, None) is not None:
            self.acked += 1

    def _lost(self) -> None:
        """Forget the connection (and paho's queue with it); keep every unacked message, oldest first."""
        self.connected = False
        self.resend = deque([*self.pending.values(), *self.resend])
        self.pending.clear()
        if self.client is not None:
            try:
                self.client.disconnect()
            except Exception as exc:  # noqa: BLE001 - the socket is already gone; only note it
                self.errors.append(repr(exc))
            self.client = None

    def _publish(self, message: Message) -> None:
        assert self.client is not None
        info = self.client.publish(message.topic, message.payload, qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS and info.rc != paho.MQTT_ERR_NO_CONN:
            self.errors.append(f"publish rc={info.rc}")
        self.pending[info.mid] = message  # rc NO_CONN: paho still keeps it; either way _lost() will resend

    def _publish_due(self) -> None:
        budget = min(BURST, MAX_INFLIGHT - len(self.pending))
        while self.resend and budget > 0 and self.connected:
            self._publish(self.resend.popleft())
            self.resent += 1
            budget -= 1
        if self.finishing.is_set():
            return
        elapsed = time.time() - self.t0
        t0_ms = int(self.t0 * 1000)
        due = [int(elapsed * stream.rate) - stream.count for stream in self.streams]
        while budget > 0 and self.connected:  # one message per late stream in turn: catch-up is fair
            late = [i for i, n in enumerate(due) if n > 0]
            if not late:
                break
            for i in late[:budget]:
                self._publish(self.streams[i].next(t0_ms))
                due[i] -= 1
                budget -= 1


@dataclass(frozen=True)
class Published:
    """What the publisher handed over, per device: (kind, channel, count); numbers run 0..count-1."""

    site: str
    devices: dict[str, tuple[str, Channel, int]]
    unacked: int

    @property
    def total(self) -> int:
        return sum(n for _, _, n in self.devices.values())


class LoadPublisher:
    """Paced QoS 1 load over several device connections; `stop()` waits until every message is PUBACKed.

    `rate` is messages per second in all; `event_share` of it are access events
    spread over `doors` devices, the rest elevator telemetry over `elevators`.
    """

    def __init__(self, host: str, port: int, root: str, site: str = "load", rate: float = 2500,
                 elevators: int = 16, doors: int = 4, event_share: float = 0.05, connections: int = 4,
                 probe: bool = False) -> None:
        self.site = site
        self.t0 = time.time()
        tele_rate = rate * (1 - event_share) / elevators
        event_rate = rate * event_share / doors
        if max(tele_rate, event_rate) > 1000:
            raise ValueError("more than 1,000 msg/s per device: add devices (ts must stay unique per ms)")
        self.streams = [Stream(site, "elevator", f"e{i:02d}", "telemetry", tele_rate, root) for i in range(elevators)]
        self.streams += [Stream(site, "access", f"a{i:02d}", "event", event_rate, root) for i in range(doors)]
        if probe:
            self.streams[0].sent_at = []
        groups: list[list[Stream]] = [[] for _ in range(connections)]
        for i, stream in enumerate(self.streams):
            groups[i % connections].append(stream)
        tag = f"{root}-{site}"[-16:]
        self.links = [_Link(f"load-{tag}-{i}", host, port, g, self.t0) for i, g in enumerate(groups) if g]

    @property
    def probe(self) -> Stream:
        """The stream whose publish times are kept (`probe=True`): its `seq` read back gives end-to-end lag."""
        return self.streams[0]

    def start(self) -> LoadPublisher:
        self.t0 = time.time()
        for link in self.links:
            link.t0 = self.t0
            link.start()
        return self

    @property
    def generated(self) -> int:
        return sum(s.count for s in self.streams)

    @property
    def acked(self) -> int:
        return sum(link.acked for link in self.links)

    @property
    def outstanding(self) -> int:
        return sum(link.outstanding for link in self.links)

    @property
    def connected(self) -> bool:
        return all(link.connected for link in self.links)

    @property
    def resent(self) -> int:
        return sum(link.resent for link in self.links)

    def stop(self, timeout: float = 60.0) -> Published:
        """Stop generating, wait up to `timeout` for every message to be PUBACKed, then disconnect."""
        for link in self.links:
            link.finishing.set()
        deadline = time.monotonic() + timeout
        for link in self.links:
            link.join(max(0.0, deadline - time.monotonic()))
        for link in self.links:
            link.halt.set()
            link.join(5)
        return Published(self.site, {s.device: (s.kind, s.channel, s.count) for s in self.streams},
                         sum(link.outstanding for link in self.links))


@dataclass(frozen=True)
class DeviceCount:
    device: str
    channel: Channel
    published: int
    stored: int
    """rows in InfluxDB"""
    distinct: int
    """distinct `seq` (telemetry) or `id` (events) among them"""

    @property
    def missing(self) -> int:
        return self.published - self.distinct

    @property
    def duplicated(self) -> int:
        return self.stored - self.distinct


@dataclass(frozen=True)
class Report:
    rows: list[DeviceCount] = field(default_factory=list)

    def _sum(self, attr: str, channel: Channel | None = None) -> int:
        return sum(getattr(r, attr) for r in self.rows if channel is None or r.channel == channel)

    @property
    def published(self) -> int:
        return self._sum("published")

    @property
    def stored(self) -> int:
        return self._sum("stored")

    @property
    def missing(self) -> int:
        return self._sum("missing")

    @property
    def duplicated(self) -> int:
        return self._sum("duplicated")

    @property
    def exactly_once(self) -> bool:
        return all(r.missing == 0 and r.duplicated == 0 for r in self.rows)

    def summary(self) -> str:
        parts = [f"published {self.published}, stored {self.stored}, missing {self.missing}, "
                 f"duplicated {self.duplicated}"]
        for channel in ("telemetry", "event"):
            parts.append(f"{channel}: published {self._sum('published', channel)}, "
                         f"missing {self._sum('missing', channel)}, duplicated {self._sum('duplicated', channel)}")
        return "; ".join(parts)

    def table(self) -> str:
        lines = [f"{'device':<8} {'channel':<9} {'published':>9} {'stored':>8} {'missing':>8} {'duplicated':>10}"]
        lines += [f"{r.device:<8} {r.channel:<9} {r.published:>9} {r.stored:>8} {r.missing:>8} {r.duplicated:>10}"
                  for r in self.rows]
        return "\n".join(lines)


def _grouped(client: httpx.Client, influx_url: str, db: str, query: str) -> dict[str, tuple[int, int]]:
    """device -> (count, count distinct) of a `GROUP BY "device"` query; {} when nothing is stored."""
    answer = client.get(f"{influx_url}/query", params={"db": db, "q": query}).raise_for_status().json()
    result = answer["results"][0]
    if "error" in result:
        if "database not found" in result["error"]:
            return {}
        raise RuntimeError(f"InfluxDB: {result['error']} ({query})")
    return {s["tags"]["device"]: (int(s["values"][0][1]), int(s["values"][0][2])) for s in result.get("series", [])}


def count_stored(influx_url: str, db: str, published: Published, timeout_s: float = 30.0) -> Report:
    """One reading of what InfluxDB holds for each published device (each query within `timeout_s`)."""
    with httpx.Client(timeout=timeout_s) as client:
        site = published.site
        found: dict[tuple[str, str], tuple[int, int]] = {}
        for kind, column in {(k, "seq" if ch == "telemetry" else "id") for k, ch, _ in published.devices.values()}:
            measurement = kind if column == "seq" else f"{kind}_event"
            q = (f'SELECT count("{column}"), count(distinct("{column}")) FROM "{measurement}" '
                 f"WHERE \"site\" = '{site}' GROUP BY \"device\"")
            for device, counts in _grouped(client, influx_url, db, q).items():
                found[(kind, device)] = counts
    rows = [DeviceCount(device, channel, n, *found.get((kind, device), (0, 0)))
            for device, (kind, channel, n) in sorted(published.devices.items())]
    return Report(rows)


def check_stored(influx_url: str, db: str, published: Published, timeout: float = 60.0,
                 quiet_s: float = 3.0) -> Report:
    """What InfluxDB holds, once it has everything or has stopped changing for `quiet_s` (the hub draining)."""
    deadline = time.monotonic() + timeout
    last: tuple[int, int] | None = None
    steady_since = time.monotonic()
    while True:  # a soak's millions of points take InfluxDB 1.6 more than 30 s to count on a busy machine
        report = count_stored(influx_url, db, published, max(30.0, deadline - time.monotonic()))
        now = time.monotonic()
        if report.missing == 0 and report.stored >= published.total:
            time.sleep(quiet_s / 3)  # late duplicates would still be on their way
            return count_stored(influx_url, db, published)
        if (report.stored, report.missing) != last:
            last, steady_since = (report.stored, report.missing), now
        if now - steady_since >= quiet_s or now >= deadline:
            return report
        time.sleep(0.5)


def duplicate_examples(influx_url: str, db: str, published: Published, device: str, limit: int = 3) -> list[str]:
    """A few stored copies of one message of `device`, with their point times and `lag_ms`: where a twin came from."""
    kind, channel, _ = published.devices[device]
    column, measurement = ("seq", kind) if channel == "telemetry" else ("id", f"{kind}_event")
    q = (f'SELECT "{column}", "lag_ms" FROM "{measurement}" '
         f"WHERE \"site\" = '{published.site}' AND \"device\" = '{device}'")
    answer = httpx.get(f"{influx_url}/query", params={"db": db, "q": q, "epoch": "ms"}, timeout=30).json()
    series = answer["results"][0].get("series") or [{"values": []}]
    copies: dict[object, list[tuple[int, object]]] = {}
    for t, key, lag in series[0]["values"]:
        copies.setdefault(key, []).append((t, lag))
    twins = [(key, rows) for key, rows in copies.items() if len(rows) > 1][:limit]
    return [f"{device} {column}={key}: " + ", ".join(f"time {t} lag_ms {lag}" for t, lag in rows)
            for key, rows in twins]


def last_seq(influx_url: str, db: str, site: str, device: str) -> int | None:
    """Highest `seq` stored for one elevator (the soak's lag probe)."""
    q = f"SELECT max(\"seq\") FROM \"elevator\" WHERE \"site\" = '{site}' AND \"device\" = '{device}'"
    answer = httpx.get(f"{influx_url}/query", params={"db": db, "q": q}, timeout=2).json()
    series = answer["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else None


def describe(links: Iterable[_Link]) -> str:
    return ", ".join(f"{link.client_id}: {link.connects} connects, {link.resent} resent" for link in links)
