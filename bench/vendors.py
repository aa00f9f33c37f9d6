"""Vendor adapters' capacity (issue 14 item 5): Hikvision ISAPI posts per second one hub takes, Frigate events per
second through the MQTT adapter, and incident merging's cost per event.

    PYTHONPATH=. .venv/bin/python bench/vendors.py                       # every part
    PYTHONPATH=. .venv/bin/python bench/vendors.py --part hikvision --rates 300 500 700 --seconds 20
    PYTHONPATH=. .venv/bin/python bench/vendors.py --part hikvision --code /tmp/before . --repeat 2
    PYTHONPATH=. .venv/bin/python bench/vendors.py --part app --profile  # posts into the ASGI app, cProfile

Everything is real: a Mosquitto, an InfluxDB (Debian 1.6) and the hub as a `smarthub run` subprocess (the durable
outbox on, as in production) from tests/support. `--code DIR...` runs the hub from each checkout in turn (say
`git archive c837cca | tar -x -C /tmp/before`, then this one), alternating `--repeat` times, so before and after
are measured under the same load of the machine; each is the hub's PYTHONPATH, so `/tmp/before:/tmp/hide` puts
a directory in front of the venv's packages (one whose `httptools/__init__.py` raises ImportError runs uvicorn
on h11, as before httptools was a dependency).

- **hikvision**: several keep-alive HTTP/1.1 connections (a raw asyncio client: httpx would cost the client more
  CPU than the hub under test) post `multipart/form-data` ANPR alerts (tests/adapters/hikvision/fixtures/anpr.xml,
  each with its own plate and so its own passage id) with a 50 KiB JPEG each, as lane cameras do, to
  `POST /push/hikvision/{site}/{device}`, paced to the target rate. Counted: the answers (every one must be 200),
  the passages in InfluxDB (`count` and `count(distinct(id))`: each stored exactly once) and the picture files
  kept. A rate is sustained when the clients kept it (>= 97%), nothing is lost and the outbox caught up.
- **frigate**: `mosquitto_pub -l -q 1` publishers send tracked objects' `frigate/events` (`new`, 3 `update`s,
  `end`, from tests/adapters/frigate/fixtures) for registry cameras; counted: detections in InfluxDB.
- **incidents**: `hub.incidents.merge.place` (pure) per event joining an incident, and the desk's
  `on_message` per event (with and without an active incident at the event's place), in-process.
- **app**: ANPR posts straight into the hub's ASGI app in process (no sockets, no HTTP parser, no store):
  the adapter's and the pipeline's CPU a post, steadier than the end-to-end figure; `--profile` for cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import orjson

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # a bench file must not shadow a package
sys.path.insert(0, str(REPO))

from bench.proc import cpu_seconds, rss_mb  # noqa: E402

SITE = "bench"
HIK_FIXTURES = REPO / "tests" / "adapters" / "hikvision" / "fixtures"
FRIGATE_FIXTURES = REPO / "tests" / "adapters" / "frigate" / "fixtures"
PICTURE_BYTES = 50 * 1024
BEIJING = timezone(timedelta(hours=8))
BOUNDARY = "MIME_boundary_bench"


def metric(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


# -- Hikvision -------------------------------------------------------------------------------------------------

def jpeg(size: int, seed: int) -> bytes:
    """A picture of `size` bytes with JPEG's start and end markers (the hub keeps it as it is, never decodes)."""
    body = random.Random(seed).randbytes(size - 6)
    return b"\xff\xd8\xff\xe0" + body + b"\xff\xd9"


ANPR_XML = (HIK_FIXTURES / "anpr.xml").read_bytes()


def anpr_post(device: str, n: int, when: datetime, picture: bytes) -> tuple[bytes, bytes]:
    """(multipart body, content type) of one ANPR alert with its own plate (so its own passage id)."""
    plate = f"蓝琼{'ABCDEFGHJK'[n // 100_000 % 10]}{n % 100_000:05d}".encode()
    xml = (ANPR_XML.replace("蓝琼A12345".encode(), plate)
           .replace(b"2026-11-22T07:58:03+08:00", when.astimezone(BEIJING).isoformat("T", "seconds").encode()))
    parts = [b"--" + BOUNDARY.encode() + b"\r\n"
             b'Content-Disposition: form-data; name="anpr.xml"; filename="anpr.xml"\r\n'
             b'Content-Type: text/xml; charset="UTF-8"\r\nContent-Length: ' + str(len(xml)).encode() + b"\r\n\r\n"
             + xml + b"\r\n",
             b"--" + BOUNDARY.encode() + b"\r\n"
             b'Content-Disposition: form-data; name="licensePlatePicture.jpg"; filename="licensePlatePicture.jpg"\r\n'
             b"Content-Type: image/jpeg\r\nContent-Length: " + str(len(picture)).encode() + b"\r\n\r\n"
             + picture + b"\r\n",
             b"--" + BOUNDARY.encode() + b"--\r\n"]
    return b"".join(parts), f"multipart/form-data; boundary={BOUNDARY}".encode()


@dataclass
class PostStats:
    sent: int = 0
    answered: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


async def poster(host: str, port: int, device: str, password: str, numbers: range, rate: float, t0: float,
                 stats: PostStats, picture: bytes, when: datetime) -> None:
    """One camera on one keep-alive connection: its posts at its share of the rate (closed loop: the next post
    goes once the last is answered, or at its time, whichever is later)."""
    auth = b"Basic " + base64.b64encode(f"{device}:{password}".encode())
    reader, writer = await asyncio.open_connection(host, port)
    path = f"/push/hikvision/{SITE}/{device}".encode()
    try:
        for i, n in enumerate(numbers):
            if rate > 0:
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            body, content_type = anpr_post(device, n, when, picture)
            request = (b"POST " + path + b" HTTP/1.1\r\nHost: hub\r\nAuthorization: " + auth
                       + b"\r\nContent-Type: " + content_type + b"\r\nContent-Length: " + str(len(body)).encode()
                       + b"\r\n\r\n")
            started = time.monotonic()
            writer.write(request)
            writer.write(body)
            stats.sent += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            if length:
                await reader.readexactly(int(length.group(1)))
            stats.latencies.append(time.monotonic() - started)
            stats.answered[status] = stats.answered.get(status, 0) + 1
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    except (OSError, asyncio.IncompleteReadError) as exc:
        stats.errors += 1
        print(f"  {device}: connection failed: {exc!r}", flush=True)
    finally:
        writer.close()


@dataclass
class HikResult:
    code: str
    target: int
    sent: int
    seconds: float
    answered: dict[int, int]
    p50_ms: float
    p99_ms: float
    stored: int
    distinct: int
    pictures: int
    catch_up_s: float
    hub_cpu_pct: float
    hub_rss_mb: float
    client_cpu_pct: float

    @property
    def cpu_ms_per_post(self) -> float:
        """The hub's CPU (user + system) a post, from the first post until everything was stored."""
        return 10 * self.hub_cpu_pct * (self.seconds + self.catch_up_s) / max(self.sent, 1)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds

    @property
    def lost(self) -> int:
        ok = self.answered.get(200, 0)
        return (self.sent - ok) + (ok - self.distinct) + (ok - self.pictures)

    @property
    def sustained(self) -> bool:
        return (self.lost == 0 and self.stored == self.distinct == self.sent
                and (self.target == 0 or self.rate >= 0.97 * self.target) and self.catch_up_s <= 5)


def influx_query(influx_url: str, db: str, q: str) -> list[list[object]]:
    answer = httpx.get(f"{influx_url}/query", params={"db": db, "q": q}, timeout=30).json()
    series = answer["results"][0].get("series")
    return series[0]["values"] if series else []


def passages_stored(influx_url: str, db: str) -> tuple[int, int]:
    rows = influx_query(influx_url, db, "SELECT count(\"plate\"), count(distinct(\"id\")) FROM \"gate_event\" "
                                        f"WHERE \"site\" = '{SITE}'")
    return (int(rows[0][1]), int(rows[0][2])) if rows else (0, 0)


def pictures_kept(data_dir: Path) -> int:
    folder = data_dir / "hikvision-pictures" / SITE
    return sum(1 for p in folder.rglob("*.jpg") if p.stat().st_size == PICTURE_BYTES) if folder.exists() else 0


def run_hikvision(hub, influx_url: str, cameras: list[tuple[str, str]], target: int, seconds: float,  # type: ignore[no-untyped-def]
                  connections: int, first: int, code: str) -> HikResult:
    """One step: `connections` cameras post for `seconds` at `target`/s in all (0: as fast as answered)."""
    stored0, distinct0 = passages_stored(influx_url, hub.db)
    pictures0 = pictures_kept(hub.directory / "data")
    per_conn = int((target or 600) * seconds / connections)
    stats = PostStats()
    picture = jpeg(PICTURE_BYTES, first)
    when = datetime.now(UTC) - timedelta(seconds=30)

    async def all_posters() -> float:
        t0 = time.monotonic()
        await asyncio.gather(*(poster("127.0.0.1", hub.port, device, password,
                                      range(first + c * per_conn, first + (c + 1) * per_conn),
                                      target / connections, t0 + c * 0.003, stats, picture, when)
                               for c, (device, password) in enumerate(cameras[:connections])))
        return time.monotonic() - t0

    cpu0, client0 = cpu_seconds(hub.pid), time.process_time()
    t0 = time.monotonic()
    elapsed = asyncio.run(all_posters())
    client_cpu = time.process_time() - client0
    posted = time.monotonic()
    try:
        hub.drained(timeout=120)
    except TimeoutError as exc:
        print(f"  {exc}", flush=True)
    caught_up = time.monotonic()
    cpu = cpu_seconds(hub.pid) - cpu0
    stored, distinct = passages_stored(influx_url, hub.db)
    return HikResult(code, target, stats.sent, elapsed, stats.answered, 1000 * percentile(stats.latencies, 0.5),
                     1000 * percentile(stats.latencies, 0.99), stored - stored0, distinct - distinct0,
                     pictures_kept(hub.directory / "data") - pictures0, caught_up - posted,
                     100 * cpu / (caught_up - t0), rss_mb(hub.pid), 100 * client_cpu / elapsed)


async def _app_posts(posts: int, profile: bool) -> None:
    """`posts` ANPR posts straight into the hub's ASGI app (no sockets, no HTTP parser), 16 at a time: the
    adapter's and the pipeline's own CPU a post, steadier than the end-to-end figure on a shared machine."""
    import cProfile
    import pstats

    from hub.api import create_app
    from hub.app import Hub
    from hub.config import Settings
    from tests.support.processes import free_port

    work = Path(tempfile.mkdtemp(prefix="bench-vendors-app-"))
    settings = Settings(mqtt_url=f"mqtt://hub:x@127.0.0.1:{free_port()}", influx_url=f"http://127.0.0.1:{free_port()}",
                        root="bench", data_dir=work, admin_token="bench", log_level="error",
                        adapters="adapters.hikvision")
    picture = jpeg(PICTURE_BYTES, 1)
    when = datetime.now(UTC) - timedelta(seconds=30)
    async with Hub(settings) as hub:
        password = hub.credentials.add(SITE, "gate", "lpr-app")
        app = create_app(hub)
        auth = b"Basic " + base64.b64encode(f"lpr-app:{password}".encode())
        statuses: list[int] = []

        async def one(n: int) -> None:
            raw, content_type = anpr_post("lpr-app", n, when, picture)
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                     "scheme": "http", "path": f"/push/hikvision/{SITE}/lpr-app", "raw_path": b"", "root_path": "",
                     "query_string": b"", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000),
                     "headers": [(b"host", b"hub"), (b"authorization", auth), (b"content-type", content_type),
                                 (b"content-length", str(len(raw)).encode())]}
            chunks = [raw[i:i + 65_536] for i in range(0, len(raw), 65_536)]

            async def receive() -> dict[str, object]:
                chunk = chunks.pop(0) if chunks else b""
                return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

            async def send(message: dict[str, object]) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(int(message["status"]))  # type: ignore[call-overload]

            await app(scope, receive, send)

        for measured in (False, True):
            base = 100_000 if measured else 0
            profiler = cProfile.Profile() if profile and measured else None
            started = time.process_time()
            if profiler:
                profiler.enable()
            for batch in range(0, posts, 16):
                await asyncio.gather(*(one(base + n) for n in range(batch, min(batch + 16, posts))))
            if profiler:
                profiler.disable()
            cpu = time.process_time() - started
        assert statuses == [200] * len(statuses), sorted(set(statuses))
        print(f"{posts} ANPR posts into the ASGI app, 16 at a time: {1000 * cpu / posts:.3f} ms of CPU a post "
              "(this process; the pictures' worker thread included)", flush=True)
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    shutil.rmtree(work, ignore_errors=True)


# -- Frigate ---------------------------------------------------------------------------------------------------

FRIGATE_T0 = 1764614400.0
"""The Frigate fixtures' times start here."""


def frigate_object(name: str, n: int, start_s: float, updates: int, step_s: float = 0.005) -> list[bytes]:
    """One tracked object's `frigate/events`: new, `updates` updates, end, from the fixtures (its own id), one
    frame `step_s` apart: a camera's stream moves forward in time, as Frigate's does."""
    def shaped(fixture: str, frame_s: float, end: bool) -> bytes:
        data = orjson.loads((FRIGATE_FIXTURES / fixture).read_bytes())
        for side in (data["before"], data["after"]):
            side["id"] = f"{start_s:.6f}-b{n:06d}"
            side["camera"] = name
            side["start_time"] = start_s
            side["frame_time"] = frame_s
            side["current_zones"] = side["entered_zones"] = []  # the plain detection; zone rules are mapping's
            if side.get("end_time") is not None or end:
                side["end_time"] = frame_s
            if isinstance(side.get("snapshot"), dict):
                side["snapshot"]["frame_time"] = frame_s
        return orjson.dumps(data)

    out = [shaped("event_new.json", start_s, False)]
    out += [shaped("event_update.json", start_s + step_s * (u + 1), False) for u in range(updates)]
    out.append(shaped("event_end.json", start_s + step_s * (updates + 1), True))
    return out


def detections_stored(influx_url: str, db: str) -> int:
    rows = influx_query(influx_url, db, f"SELECT count(\"score\") FROM \"camera_event\" WHERE \"site\" = '{SITE}'")
    return int(rows[0][1]) if rows else 0


@dataclass
class FrigateResult:
    code: str
    target: int
    sent: int
    seconds: float
    stored: int
    catch_up_s: float
    hub_cpu_pct: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds

    @property
    def sustained(self) -> bool:
        """Everything stored, and within 5 s of the publishers' end (their own rate is what they reached)."""
        return self.stored == self.sent and self.catch_up_s <= 5


def run_frigate(hub, broker, influx_url: str, cameras: int, target: int, seconds: float, first: int,  # type: ignore[no-untyped-def]
                code: str, updates: int = 3) -> FrigateResult:
    """Publishers (one per Frigate camera) send tracked objects' events at `target` messages/s in all."""
    from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER

    stored0 = detections_stored(influx_url, hub.db)
    per_object = updates + 2
    objects = int(target * seconds / per_object / cameras)
    step_s = 0.005
    base_s = time.time() - 3000 + first * step_s / cameras  # later steps later: a camera's stream only moves on
    lines = []
    for c in range(cameras):
        messages = []
        for o in range(objects):
            messages += frigate_object(f"fcam{c}", first + c * objects + o, base_s + o * per_object * step_s,
                                       updates, step_s)
        lines.append(messages)
    pubs = [subprocess.Popen(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-u", DEVICE_USER,
                              "-P", DEVICE_PASSWORD, "-q", "1", "-M", "100", "-l", "-t", "frigate/events",
                              "-i", f"bench-frigate-{first}-{c}"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
            for c in range(cameras)]
    slices = max(1, int(seconds * 50))
    cpu0, t0 = cpu_seconds(hub.pid), time.monotonic()
    for s in range(slices):
        for c, p in enumerate(pubs):
            chunk = lines[c][s * len(lines[c]) // slices:(s + 1) * len(lines[c]) // slices]
            if chunk:
                p.stdin.write(b"\n".join(chunk) + b"\n")  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
        delay = t0 + (s + 1) / 50 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    for p in pubs:
        p.stdin.close()  # type: ignore[union-attr]
        p.wait()
    published = time.monotonic()
    sent = sum(len(m) for m in lines)
    deadline = published + 120
    while time.monotonic() < deadline:
        if detections_stored(influx_url, hub.db) - stored0 >= sent and hub.backlog() == 0:
            break
        time.sleep(0.1)
    caught_up = time.monotonic()
    cpu = cpu_seconds(hub.pid) - cpu0
    stored = detections_stored(influx_url, hub.db) - stored0
    text = hub.metrics_text()
    if stored != sent:
        print("  hub counts: " + ", ".join(f"{n.removeprefix('smarthub_')} {metric(text, n):.0f}" for n in (
            "smarthub_messages_received_total", "smarthub_messages_accepted_total",
            "smarthub_messages_rejected_total", "smarthub_events_duplicate_total",
            "smarthub_messages_repeated_total", "smarthub_write_points_total")), flush=True)
    return FrigateResult(code, target, sent, published - t0, stored,
                         caught_up - published, 100 * cpu / (caught_up - t0))


# -- the hub ---------------------------------------------------------------------------------------------------

def registry_toml(frigate_cameras: int) -> str:
    out = [f'[sites.{SITE}]\nname = "bench"\n']
    for c in range(frigate_cameras):
        out.append(f'[[devices]]\nsite = "{SITE}"\nkind = "camera"\ndevice = "cam-{c}"\n'
                   f'aliases = {{frigate = "fcam{c}"}}\n')
    return "\n".join(out)


def start_hub(code: str, broker, influx_url: str, work: Path, cameras: int, frigate_cameras: int):  # type: ignore[no-untyped-def]
    """A `smarthub run` of the checkout `code`, with `cameras` Hikvision accounts; (hub, [(device, password)])."""
    from hub.credentials import Credentials, mosquitto_hash
    from tests.support.hub_process import HubProcess

    work.mkdir(parents=True)
    registry = work / "registry.toml"
    registry.write_text(registry_toml(frigate_cameras), encoding="utf-8")
    env = {"SMARTHUB_LOG_LEVEL": "warning", "PYTHONPATH": code, "SMARTHUB_REGISTRY": str(registry),
           "SMARTHUB_ADAPTERS": "adapters.hikvision,adapters.frigate"}
    hub = HubProcess(broker, influx_url, f"bench{work.name}", work / "hub", env=env)
    (work / "hub" / "data").mkdir(parents=True)
    credentials = Credentials(work / "hub" / "data")
    accounts = [(f"lpr-{i:03d}", f"pw-{i:03d}-{random.randrange(10**9)}") for i in range(cameras)]
    with credentials.db.write() as db:
        db.executemany("INSERT INTO devices (site, kind, device, hash) VALUES (?, 'gate', ?, ?)",
                       [(SITE, d, mosquitto_hash(pw)) for d, pw in accounts])
    credentials.close()
    hub.start()
    return hub, accounts


# -- incidents -------------------------------------------------------------------------------------------------

def bench_incidents(events: int) -> None:
    """Per-event cost of merging: `place` (pure) and the desk's `on_message`, idle and with an active incident."""
    from devices import REGISTRY as KINDS
    from devices.base import Accepted
    from hub.alerts.store import AlertStore
    from hub.incidents.desk import IncidentDesk
    from hub.incidents.merge import alert_part, event_part, place
    from hub.incidents.store import IncidentStore
    from hub.registry import Device, Registry
    from hub.state import DeviceState

    now = int(time.time() * 1000)
    places = frozenset({"gate-east", "lane-1"})
    incident = place([], alert_part(_alert(now), places), 300_000, [])
    assert incident is not None
    started = time.perf_counter()
    for i in range(events):
        part = event_part(SITE, "gate", "lane-1", f"p-{i}", now + i, "passage", places, {"plate": f"琼A{i:05d}"})
        incident = place([incident], part, 300_000) or incident
    pure_us = 1e6 * (time.perf_counter() - started) / events
    print(f"merge.place, an event joining an active incident: {pure_us:.1f} us/event ({events} events; the "
          f"incident keeps {len(incident.parts)} parts, the rest counted)", flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench-incidents-"))
    registry = Registry(devices=[Device(site=SITE, kind="gate", device="lane-1", place="gate-east"),
                                 Device(site=SITE, kind="access", device="door-e", place="gate-east")])
    alerts = AlertStore(work / "alerts.db")
    desk = IncidentDesk(IncidentStore(alerts), registry, notify=lambda _: None)
    gate = KINDS["gate"]
    payloads = [gate.validate("event", orjson.dumps(
        {"type": "passage", "id": f"d-{i}", "plate": f"琼B{i:05d}", "plate_color": "blue", "direction": "in",
         "lane": "1", "vehicle_class": "car", "confidence": 0.9, "decision": "allowed", "category": "resident"}))
        for i in range(events)]
    state = DeviceState(SITE, "gate", "lane-1")

    def feed(base_ms: int) -> float:
        t = time.perf_counter()
        for i, payload in enumerate(payloads):
            desk.on_message(Accepted(SITE, "gate", "lane-1", "event", payload, base_ms + i, base_ms + i, 0), state)
        return 1e6 * (time.perf_counter() - t) / events

    idle = feed(now)
    desk.on_alert(_alert(now + events))
    busy = feed(now + events + 1)
    print(f"desk.on_message per event: {idle:.1f} us with no incident active (the common case), {busy:.1f} us "
          "joining an active one at its place (each change stored and announced)\n", flush=True)
    shutil.rmtree(work, ignore_errors=True)


def _alert(now_ms: int):  # type: ignore[no-untyped-def]
    from devices.base import Severity
    from hub.alerts.models import Alert, new_id

    return Alert(new_id(now_ms), SITE, "access", "door-e", "door_forced", Severity.MAJOR, "门被强行打开",
                 "door forced", None, now_ms)


# -- main ------------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["hikvision", "app", "frigate", "incidents", "all"], default="all",
                        help="app: Hikvision posts into the ASGI app in process (--profile for cProfile's top)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--app-posts", type=int, default=3000)
    parser.add_argument("--code", nargs="+", default=[str(REPO)],
                        help="checkouts whose hub is run, in turn (default: this one); each is the hub's PYTHONPATH, "
                             "so `DIR:EXTRA` adds a directory of extra packages after the checkout")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over --code")
    parser.add_argument("--rates", type=int, nargs="+", default=[300, 500, 0],
                        help="Hikvision posts/s in all (0: as fast as answered)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections (one camera each)")
    parser.add_argument("--frigate-rates", type=int, nargs="+", default=[1000, 2500, 5000, 8000],
                        help="Frigate messages/s in all")
    parser.add_argument("--frigate-cameras", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--incident-events", type=int, default=3_000)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (hub data, logs, pictures)")
    args = parser.parse_args()

    if args.part in ("incidents", "all"):
        bench_incidents(args.incident_events)
    if args.part in ("app", "all"):
        asyncio.run(_app_posts(args.app_posts, args.profile))
    if args.part in ("incidents", "app"):
        return
    from tests.support.influx_fixtures import start_influxd
    from tests.support.mqtt_fixtures import start_mosquitto

    work = Path(tempfile.mkdtemp(prefix="bench-vendors-"))
    broker = start_mosquitto(work / "mosquitto")
    influxd = start_influxd(work / "influxdb")
    print(f"{os.cpu_count()} cores shared with whatever else runs: figures are noisy, repeat them\n", flush=True)
    hik: list[HikResult] = []
    frig: list[FrigateResult] = []
    try:
        for round_ in range(args.repeat):
            for index, code in enumerate(args.code):
                path = os.pathsep.join(str(Path(p).resolve()) for p in code.split(os.pathsep))
                name = "+".join(Path(p).resolve().name for p in code.split(os.pathsep))
                hub, cameras = start_hub(path, broker, influxd.url, work / f"r{round_}c{index}",
                                         args.connections, args.frigate_cameras)
                try:
                    print(f"round {round_ + 1}, hub from {path} (pid {hub.pid})", flush=True)
                    first = 0
                    if args.part in ("hikvision", "all"):
                        for rate in args.rates:
                            r = run_hikvision(hub, influxd.url, cameras, rate, args.seconds, args.connections,
                                              first, name)
                            first += r.sent + 1000
                            hik.append(r)
                            print(f"  hikvision target {rate or 'max':>4}/s: {r.rate:6.0f} posts/s, "
                                  f"answers {r.answered}, p50 {r.p50_ms:.0f} ms p99 {r.p99_ms:.0f} ms, "
                                  f"stored {r.stored} (distinct {r.distinct}), pictures {r.pictures}, "
                                  f"lost {r.lost}, catch-up {r.catch_up_s:.1f} s, hub CPU {r.hub_cpu_pct:.0f}% "
                                  f"({r.cpu_ms_per_post:.2f} ms a post), RSS {r.hub_rss_mb:.0f} MB, clients' CPU "
                                  f"{r.client_cpu_pct:.0f}%: {'sustained' if r.sustained else 'NOT sustained'}",
                                  flush=True)
                    if args.part in ("frigate", "all"):
                        for rate in args.frigate_rates:
                            f = run_frigate(hub, broker, influxd.url, args.frigate_cameras, rate, args.seconds,
                                            first, name)
                            first += f.sent
                            frig.append(f)
                            print(f"  frigate target {rate}/s: {f.rate:6.0f} events/s, stored {f.stored} of "
                                  f"{f.sent}, catch-up {f.catch_up_s:.1f} s, hub CPU {f.hub_cpu_pct:.0f}%: "
                                  f"{'sustained' if f.sustained else 'NOT sustained'}", flush=True)
                            if f.stored < f.sent or f.catch_up_s > 30:
                                break
                finally:
                    hub.stop()
                    hub.close()
    finally:
        broker.service.stop()
        influxd.stop()
        if not args.keep:  # thousands of 50 KiB pictures a step: gigabytes after a few rounds
            shutil.rmtree(work, ignore_errors=True)
    if hik:
        print("\nHikvision ANPR posts with a 50 KiB picture (median over rounds)")
        print(f"{'code':<28} {'target/s':>8} {'posts/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms':>6} {'lost':>5}"
              "  sustained")
        for key in dict.fromkeys((r.code, r.target) for r in hik):
            rows = [r for r in hik if (r.code, r.target) == key]
            print(f"{key[0]:<28} {key[1] or 'max':>8} {statistics.median(r.rate for r in rows):>8.0f} "
                  f"{statistics.median(r.p50_ms for r in rows):>7.0f} "
                  f"{statistics.median(r.p99_ms for r in rows):>7.0f} "
                  f"{statistics.median(r.cpu_ms_per_post for r in rows):>6.2f} {max(r.lost for r in rows):>5}  "
                  f"{sum(r.sustained for r in rows)}/{len(rows)}")
    if frig:
        print("\nFrigate events (median over rounds)")
        for key in dict.fromkeys((r.code, r.target) for r in frig):
            rows = [r for r in frig if (r.code, r.target) == key]
            print(f"{key[0]:<28} {key[1]:>8}/s {statistics.median(r.rate for r in rows):>8.0f}/s "
                  f"stored {min(r.stored - r.sent for r in rows):+d} "
                  f"{sum(r.sustained for r in rows)}/{len(rows)} sustained")


if __name__ == "__main__":
    main()
