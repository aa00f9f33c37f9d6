"""`smarthub demo`: broker, store, hub, a simulated community and the dashboard in one process.

Everything is embedded, so a newcomer sees a live community with one command and
no other service: the MQTT broker is `hub.embedded_broker`, with the accounts and
ACL production's Mosquitto gets (generated passwords: the hub, one account per
simulated device, and a read-only observer for the printed `mosquitto_sub` line),
so the demo is no more open than a deployment. The store is the embedded SQLite one.
Two small neighbouring communities are simulated beside it, all three in one district (新河街道), so the
district wall (`/?district=xinhe`) has communities to rank.
A third of the chargers speak OCPP 1.6J to the hub's own WebSocket instead of MQTT, each with the password
`smarthub device add` would give it, so the wall shows both paths side by side.
Ports are the usual ones when free, free ones otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass

import orjson

from hub.app import Hub
from hub.config import MqttTarget, Settings, load
from hub.credentials import Rule, device_rules, hub_rules, observer_rules, username
from hub.embedded_broker import Broker
from hub.events import Events
from hub.ingest.pipeline import Pipeline
from hub.registry import District, RegistryFile
from hub.state import LiveState
from simulators.charger import STEER_EVERY_MS, orderly
from simulators.community import Community, build, plan, registry_of
from simulators.ocpp_charger import OcppFleet, SimClock, choose, meter_every, passwords_for
from simulators.runner import LiveRun, messages

log = logging.getLogger(__name__)

DISTRICT = "xinhe"
DISTRICT_NAMES = District(zh="新河街道", en="Xinhe Subdistrict")
NEIGHBOURS = ("moonlight", "riverside")
"""The simulated communities beside the main one, in its district."""
NEIGHBOUR_DEVICES = 16
SITE_NAMES_EN = {"sunshine": "Sunshine Garden", "moonlight": "Moonlight Court", "riverside": "Riverside Estate"}


@dataclass
class DemoOptions:
    devices: int = 100
    seed: int = 1
    site: str = "sunshine"
    speed: float = 1.0
    scenario: str | None = None
    http: str | None = None
    mqtt_port: int = 1883
    history_hours: float = 48
    ocpp_share: float = 1 / 3
    """Of the chargers, this share speaks OCPP (every third one), the rest MQTT."""
    neighbours: int = len(NEIGHBOURS)
    """Small communities simulated beside it, in its district (0: the main one alone, still in the district)."""


def district_registry(communities: list[Community]) -> RegistryFile:
    """The communities' registries, every site in the demo's district with its names in both languages."""
    out = RegistryFile(districts={DISTRICT: DISTRICT_NAMES})
    for community in communities:
        part = registry_of(community)
        out.sites.update({slug: site.model_copy(update={"district": DISTRICT, "name": site.name or slug,
                                                         "name_en": SITE_NAMES_EN.get(slug)})
                          for slug, site in part.sites.items()})
        out.devices.extend(part.devices)
    return out


def port_or_free(host: str, wanted: int) -> int:
    """`wanted` if nothing listens there, else a free port."""
    with socket.socket() as s:
        try:
            s.bind((host, wanted))
            return wanted
        except OSError:
            s.bind((host, 0))
            return int(s.getsockname()[1])


def demo_settings(options: DemoOptions, broker_port: int, hub_password: str) -> Settings:
    base = load()
    host, port = base.http_host_port if options.http is None else options.http.rsplit(":", 1)
    http = f"{host}:{port_or_free(host, int(port))}"
    return base.model_copy(update={
        "mqtt_url": f"mqtt://hub:{hub_password}@127.0.0.1:{broker_port}",
        "mqtt_protocol": "3.1.1",
        "mqtt_client_id": "hub",  # the broker binds client ids to logins, as the shipped mosquitto.conf
        "influx_url": None,
        "http": http,
        "admin_token": base.admin_token or secrets.token_urlsafe(18),
    })


async def run_demo(options: DemoOptions) -> None:
    """Run until SIGINT/SIGTERM (or cancelled)."""
    hub_password, observer_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    broker_port = port_or_free("127.0.0.1", options.mqtt_port)
    settings = demo_settings(options, broker_port, hub_password)
    community = build(options.site, options.seed, options.devices)
    neighbours = [build(slug, options.seed, NEIGHBOUR_DEVICES)
                  for slug in [n for n in NEIGHBOURS if n != options.site][:options.neighbours]]
    over_mqtt, piles = choose(community, share=options.ocpp_share)
    over_mqtt = Community(over_mqtt.site, [*over_mqtt.devices, *(d for n in neighbours for d in n.devices)])
    logins, users, acl = accounts(over_mqtt, settings.root, hub_password, observer_password)
    start_ms = int(time.time() * 1000)
    offline = plan(community, options.scenario, start_ms) if options.scenario else []

    async with Broker("127.0.0.1", broker_port, users, acl) as broker, Hub(settings) as hub:
        hub.registry.add(district_registry([community, *neighbours]))  # buildings, power caps, the district
        host, port = settings.http_host_port
        server = hub.http_server(host, port)
        devices_target = MqttTarget("127.0.0.1", broker.port, None, None, None)
        live = LiveRun(over_mqtt, devices_target, settings.root, options.speed,
                       logins=lambda d: logins[(d.site, d.kind_name, d.device)])
        fleet = OcppFleet(piles, f"ws://{host}:{port}", passwords_for(piles, hub.credentials.add),
                          SimClock(start_ms, options.speed), meter_every(options.speed))
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        serving = asyncio.create_task(server.serve(), name="http")
        simulating = asyncio.create_task(live.run(start_ms, None, offline), name="simulated-community")
        twin = build(options.site, options.seed, options.devices)  # its own state: the live one runs meanwhile
        hub.supervisor.start("simulated-past", lambda: backfill(hub, twin, options.history_hours, start_ms), once=True)
        while not server.started:
            await asyncio.sleep(0.05)
        fleet.start()  # the piles connect to the hub's WebSocket, so only once it listens
        print_banner(settings, broker.port, observer_password, options, len(piles), len(neighbours))
        try:
            done, _ = await asyncio.wait({asyncio.create_task(stop.wait()), serving, simulating},
                                         return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not serving and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            print("\nsmarthub demo: stopping", file=sys.stderr)
            live.stop()  # a cancel alone can be swallowed by an aiomqtt call (see LiveRun.stop)
            simulating.cancel()  # the simulated past stops with the hub's other tasks
            await asyncio.gather(simulating, return_exceptions=True)
            await live.close()
            await fleet.close()
            server.should_exit = True
            await asyncio.gather(serving, return_exceptions=True)


def accounts(community: Community, root: str, hub_password: str, observer_password: str) -> tuple[
        dict[tuple[str, str, str], tuple[str, str]], dict[str, str], dict[str, list[Rule]]]:
    """(each device's login, passwords by login, ACL by login): what `smarthub device add` and
    `smarthub broker-files` would give a deployment, for the hub, the observer and every simulated device."""
    logins = {(d.site, d.kind_name, d.device): (username(d.site, d.kind_name, d.device), secrets.token_urlsafe(12))
              for d in community.devices}
    users = {"hub": hub_password, "observer": observer_password, **dict(logins.values())}
    acl = {"hub": hub_rules(root), "observer": observer_rules(root)}
    for (site, kind, device), (login, _) in logins.items():
        acl[login] = device_rules(root, site, kind, device)
    return logins, users, acl


async def backfill(hub: Hub, community: Community, hours: float, until_ms: int) -> int:
    """Store the community's last `hours` as if the hub had been running, so the charts have a yesterday.

    The messages take the real data path (decode, validate, normalise, outbox, store) through a pipeline
    of their own: no alerts, no live state, only the vehicles-inside count hears them. It runs beside the
    live demo, yielding often, and prints its progress. A store that already holds that past is left alone
    (a demo started again on the same data). No controller runs in that past, so its chargers are steered by
    the same allocator every 30 simulated seconds (`simulators.charger.orderly`): the wall's charging curve
    stays under the site's cap line in the past as it does live."""
    start_ms = until_ms - int(hours * 3_600_000)
    measurements = [m for kind in hub.kinds for m in (kind, f"{kind}_event")]
    if hours <= 0 or await hub.storage.query_points(measurements, {}, start_ms, until_ms - 60_000, 1):
        return 0
    events = Events()
    events.on_message("vehicles-inside", hub.inside.on_message)
    pipeline = Pipeline(hub.settings.root, hub.kinds, hub.registry, LiveState(), hub.outbox, hub.dead_letters, events)
    handled, next_report = 0, 0.25
    site = hub.registry.sites.get(community.site)
    rounds = orderly(community.devices, site) if site is not None and site.has_capacity else None
    for t, name, payload in messages(community, hub.settings.root, start_ms, until_ms, rounds=rounds,
                                     every_ms=STEER_EVERY_MS):
        pipeline.handle(name, orjson.dumps(payload), t)
        handled += 1
        if handled % 2_000 == 0:
            pipeline.flush()
            await asyncio.sleep(0)  # the live community, the broker and the pages come first
            done = (t - start_ms) / (until_ms - start_ms)
            if done >= next_report:
                print(f"  smarthub demo: storing the simulated past {hours:g} h: {done:4.0%} ({handled:,} messages)",
                      file=sys.stderr, flush=True)
                next_report += 0.25
    pipeline.flush()
    while hub.outbox.depth:
        await asyncio.sleep(0.5)
    hub.settled.clear()  # kept parts of today's counts were computed before this past was there
    print(f"  smarthub demo: the simulated past {hours:g} h is stored ({handled:,} messages)", file=sys.stderr,
          flush=True)
    return handled


def print_banner(settings: Settings, broker_port: int, observer_password: str, options: DemoOptions,
                 ocpp: int = 0, neighbours: int = 0) -> None:
    host, port = settings.http_host_port
    lines = [
        "",
        f"  smarthub demo: {options.devices} simulated devices in site '{options.site}' (seed {options.seed}"
        + (f", scenario {options.scenario}" if options.scenario else "") + ")",
        f"  open         http://{host}:{port}/?site={options.site}&token={settings.admin_token}",
        f"  district     http://{host}:{port}/?district={DISTRICT}&token={settings.admin_token}"
        f"   ({DISTRICT_NAMES.zh}: '{options.site}'"
        + (f" and {neighbours} small neighbours of {NEIGHBOUR_DEVICES} devices" if neighbours else "") + ")",
        f"  API          http://{host}:{port}/docs   (Authorization: Bearer {settings.admin_token})",
        f"  MQTT watch   mosquitto_sub -h 127.0.0.1 -p {broker_port} -u observer -P {observer_password}"
        f" -t '{settings.root}/#' -v   (read-only; topics {settings.root}/<site>/<kind>/<device>/<channel>)",
        *([f"  OCPP 1.6J    {ocpp} of the chargers connect to ws://{host}:{port}/ocpp/{options.site}/<id>"
           " (Basic auth, their own passwords)"] if ocpp else []),
        f"  data         {settings.data_dir.resolve()}",
        "  Ctrl-C stops it.",
        "",
    ]
    print("\n".join(lines), flush=True)
