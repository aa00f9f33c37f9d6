"""`smarthub` command line: argument parsing only; the work lives in the modules it calls."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Coroutine
from contextlib import closing
from pathlib import Path
from typing import Any

from hub.config import ConfigError, Settings, load


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    for noisy in ("httpx", "httpcore", "uvicorn.error", "mqtt"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def _settings(args: argparse.Namespace) -> Settings | None:
    """Settings, or None after printing the one-line reason they cannot be used."""
    try:
        return load(args.config)
    except ConfigError as exc:
        print(f"smarthub: {exc}", file=sys.stderr)
        return None


def _run(args: argparse.Namespace) -> int:
    from hub.app import serve

    settings = _settings(args)
    if settings is None:
        return 2
    _setup_logging(settings.log_level)
    return _until_stopped(serve(settings))


def _check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    print(json.dumps(settings.redacted(), indent=2, ensure_ascii=False))
    return 0


def _start_ms(value: str | None, default_ms: int) -> int:
    if value is None:
        return default_ms
    from hub.times import parse_time

    parsed = parse_time(value, "--start")
    assert parsed is not None
    return parsed


def _simulate_frigate(args: argparse.Namespace) -> int:
    """`smarthub simulate --vendor frigate`: what a Frigate NVR publishes for four cameras (simulators/frigate.py)."""
    import time

    from hub.config import parse_mqtt_url
    from simulators import frigate

    duration_s = args.duration if args.duration is not None else 3600.0
    try:
        start_ms = _start_ms(args.start, OUT_START_MS if args.out else int(time.time() * 1000))
        target = None if args.out else parse_mqtt_url(args.mqtt)
    except ValueError as exc:
        print(f"smarthub simulate: {exc}", file=sys.stderr)
        return 2
    messages = frigate.stream(args.seed, start_ms, duration_s, args.frigate_prefix, throws=args.throws)
    if args.registry_out:
        args.registry_out.write_text(frigate.registry(args.site).to_toml(), encoding="utf-8")
        print(f"smarthub simulate: registry of {len(frigate.CAMERAS)} Frigate cameras in {args.registry_out}"
              " (give it to the hub as SMARTHUB_REGISTRY, with SMARTHUB_ADAPTERS including adapters.frigate)",
              file=sys.stderr)
    if args.out:
        with open(args.out, "wb") as out:
            for m in messages:
                out.write(json.dumps({"at_ms": m.at_ms, "topic": m.topic, "payload": m.payload.decode(),
                                      "retain": m.retain}, ensure_ascii=False).encode() + b"\n")
        print(json.dumps({"messages": len(messages), "out": str(args.out)}))
        return 0
    assert target is not None
    try:
        sent = asyncio.run(frigate.publish(target, messages, args.speed))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # noqa: BLE001 - aiomqtt's MqttError and OSError alike: say why, exit non-zero
        print(f"smarthub simulate: cannot publish to the broker at {args.mqtt}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"sent": sent}))
    return 0


def _simulate_vendor(args: argparse.Namespace) -> int:
    """`--vendor hikvision`: ISAPI pushes to a running hub's HTTP server, as its devices' accounts allow."""
    import httpx

    from simulators import hikvision

    try:
        logins = [hikvision.Login.parse(text) for text in args.login or ()]
        if not logins:
            raise ValueError("--vendor hikvision needs at least one --login KIND/DEVICE:PASSWORD "
                             "(from smarthub device add SITE KIND DEVICE)")
    except ValueError as exc:
        print(f"smarthub simulate: {exc}", file=sys.stderr)
        return 2

    hub_url = args.hub_url or "http://127.0.0.1:8080"

    async def go() -> hikvision.PushStats:
        async with httpx.AsyncClient(base_url=hub_url, timeout=10) as client:
            return await hikvision.run(client, args.site, logins, args.rate, args.duration or 60.0, args.seed,
                                       digest=args.digest)

    try:
        stats = asyncio.run(go())
    except KeyboardInterrupt:
        return 0
    except httpx.HTTPError as exc:
        print(f"smarthub simulate: cannot post to the hub at {hub_url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"vendor": args.vendor, "sent": stats.sent, "answered": stats.answered}))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import time

    if args.vendor == "frigate":
        return _simulate_frigate(args)
    if args.vendor:
        return _simulate_vendor(args)

    from hub.config import parse_mqtt_url
    from simulators.community import build, load_layout, plan, registry_of
    from simulators.runner import LiveRun, describe, run_to_file, status_line

    try:
        counts, buildings = load_layout(args.layout) if args.layout else (None, None)
        community = build(args.site, args.seed, args.devices, counts, buildings)
        start_ms = _start_ms(args.start, OUT_START_MS if args.out else int(time.time() * 1000))
        offline = plan(community, args.scenario, start_ms) if args.scenario else []
        target = None if args.out else parse_mqtt_url(args.mqtt)
    except ValueError as exc:
        print(f"smarthub simulate: {exc}", file=sys.stderr)
        return 2
    if args.registry_out:
        args.registry_out.write_text(registry_of(community).to_toml(), encoding="utf-8")
        print(f"smarthub simulate: registry of {len(community.devices)} devices in {args.registry_out}"
              " (give it to the hub as SMARTHUB_REGISTRY)", file=sys.stderr)
    duration_ms = int(args.duration * 1000) if args.duration is not None else None
    if args.out:
        if duration_ms is None:
            print("smarthub simulate: --out needs --duration (simulated seconds)", file=sys.stderr)
            return 2
        with open(args.out, "wb") as out:
            count = run_to_file(community, args.root, start_ms, duration_ms, out, offline)
        print(json.dumps({"messages": count, "devices": describe(community), "out": str(args.out)}))
        return 0
    _setup_logging("warning")
    over_mqtt, fleet = community, None
    if args.ocpp_chargers:
        fleet_or_code = _ocpp_fleet(args, community, start_ms)
        if isinstance(fleet_or_code, int):
            return fleet_or_code
        over_mqtt, fleet = fleet_or_code
    live = LiveRun(over_mqtt, target, args.root, args.speed, status_line if sys.stderr.isatty() else None)

    try:
        if fleet is None:
            asyncio.run(live.serve(start_ms, duration_ms, offline))
        else:
            from simulators.ocpp_charger import serve_together

            asyncio.run(serve_together(live, fleet, start_ms, duration_ms, offline))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"\nsmarthub simulate: cannot reach the broker at {args.mqtt}: {exc}", file=sys.stderr)
        return 1
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    print(json.dumps({"devices": live.stats.devices, "sent": live.stats.sent, "commands": live.stats.commands,
                      **({"ocpp_chargers": len(fleet.chargers)} if fleet else {})}))
    return 0


def _ocpp_fleet(args: argparse.Namespace, community: Any, start_ms: int) -> Any:
    """(the community left to MQTT, its first N chargers as OCPP piles), or an exit code. Each pile's password is
    made in the hub's accounts store (the hub's settings: --config or SMARTHUB_*), as `smarthub device add` does."""
    from hub.credentials import Credentials
    from simulators.ocpp_charger import OcppFleet, SimClock, choose, meter_every, passwords_for, ws_url

    if args.out:
        print("smarthub simulate: --ocpp-chargers needs a running hub, not --out", file=sys.stderr)
        return 2
    settings = _settings(args)
    if settings is None:
        return 2
    over_mqtt, piles = choose(community, count=args.ocpp_chargers)
    credentials = Credentials(settings.data_dir, settings.database_url)
    try:
        passwords = passwords_for(piles, credentials.add)
    finally:
        credentials.close()
    url = ws_url(args.hub_url or settings.http)
    print(f"smarthub simulate: {len(piles)} chargers speak OCPP 1.6J to {url}/ocpp/{args.site}/<id>", file=sys.stderr)
    return over_mqtt, OcppFleet(piles, url, passwords, SimClock(start_ms, args.speed), meter_every(args.speed))


def _demo(args: argparse.Namespace) -> int:
    from hub.demo import DemoOptions, run_demo

    _setup_logging("warning")
    options = DemoOptions(devices=args.devices, seed=args.seed, site=args.site, speed=args.speed,
                          scenario=args.scenario, http=args.http, mqtt_port=args.mqtt_port,
                          history_hours=args.history)
    return _until_stopped(run_demo(options))


def _until_stopped(main: Coroutine[Any, Any, None]) -> int:
    """Run the service until it stops; a settings or registry problem found on the way is one line, exit 2."""
    from hub.memory import pin_mmap_threshold
    from hub.registry import RegistryError

    pin_mmap_threshold()  # a long-running service: freed large blocks go back to the system
    try:
        asyncio.run(main)
    except (ConfigError, RegistryError) as exc:
        print(f"smarthub: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def _device_add(args: argparse.Namespace) -> int:
    from hub.credentials import Credentials, username
    from hub.topics import DEVICE_RE, SITE_RE

    settings = _settings(args)
    if settings is None:
        return 2
    from devices import REGISTRY

    if not SITE_RE.fullmatch(args.site) or not DEVICE_RE.fullmatch(args.device) or args.kind not in REGISTRY:
        print(f"smarthub: site, kind or device is not valid (kinds: {', '.join(sorted(REGISTRY))})", file=sys.stderr)
        return 2
    credentials = Credentials(settings.data_dir, settings.database_url)
    password = credentials.add(args.site, args.kind, args.device)
    credentials.close()
    print(json.dumps({"site": args.site, "kind": args.kind, "device": args.device,
                      "username": username(args.site, args.kind, args.device), "password": password,
                      "topic": f"{settings.root}/{args.site}/{args.kind}/{args.device}"}, ensure_ascii=False))
    return 0


def _audited_by_cli(settings: Settings, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    """A change made from the command line goes into the same audit log as the API's."""
    from hub.audit import AuditLog

    audit = AuditLog(settings.data_dir / "audit.db", settings.database_url)
    try:
        audit.record("cli", "admin", action, target, "ok", detail)
    finally:
        audit.close()


def _user_add(args: argparse.Namespace) -> int:
    from hub.users import Users

    settings = _settings(args)
    if settings is None:
        return 2
    with closing(Users(settings.data_dir, database_url=settings.database_url)) as users:
        token = users.add(args.name, args.role)
    _audited_by_cli(settings, "user.add", args.name, {"role": args.role})
    print(json.dumps({"name": args.name, "role": args.role, "token": token}, ensure_ascii=False))
    return 0


def _user_list(args: argparse.Namespace) -> int:
    from hub.users import Users

    settings = _settings(args)
    if settings is None:
        return 2
    with closing(Users(settings.data_dir, database_url=settings.database_url)) as users:
        listed = users.list_users()
    print(json.dumps([{"name": u.name, "role": u.role} for u in listed], ensure_ascii=False))
    return 0


def _user_remove(args: argparse.Namespace) -> int:
    from hub.users import Users

    settings = _settings(args)
    if settings is None:
        return 2
    with closing(Users(settings.data_dir, database_url=settings.database_url)) as users:
        removed = users.remove(args.name)
    if not removed:
        print(f"smarthub: no user {args.name!r}", file=sys.stderr)
        return 1
    _audited_by_cli(settings, "user.remove", args.name)
    print(json.dumps({"removed": args.name}, ensure_ascii=False))
    return 0


def _evidence_verify(args: argparse.Namespace) -> int:
    """`smarthub evidence verify ARCHIVE [--hub]`: the archive holds together; with --hub, this hub issued it."""
    import zipfile

    from hub.incidents.export import MANIFEST, sha256_file, verify_archive

    verdict = verify_archive(args.archive)
    digest = sha256_file(args.archive)
    if args.hub:
        from hub.alerts.store import AlertStore
        from hub.audit import AuditLog
        from hub.incidents.chain import ChainStore
        from hub.incidents.export import issued

        settings = _settings(args)
        if settings is None:
            return 2
        try:
            with zipfile.ZipFile(args.archive) as z:
                incident_id = json.loads(z.read(MANIFEST))["stored"]["id"]
        except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile):
            incident_id = None
        with closing(AlertStore(settings.data_dir / "alerts.db")) as alerts, \
                closing(AuditLog(settings.data_dir / "audit.db")) as audit:
            verdict = issued(verdict, digest, incident_id, audit, ChainStore(alerts))
    print(json.dumps({"archive": str(args.archive), "sha256": digest, **verdict.to_json()}, ensure_ascii=False,
                     indent=2))
    return 0 if verdict.ok else 1


def _evidence_chain(args: argparse.Namespace) -> int:
    """`smarthub evidence chain INCIDENT`: the stored incident against its hash chain, from the data dir."""
    from hub.alerts.store import AlertStore
    from hub.incidents.chain import ChainStore
    from hub.incidents.store import IncidentStore

    settings = _settings(args)
    if settings is None:
        return 2
    with closing(AlertStore(settings.data_dir / "alerts.db")) as alerts:
        verdict = ChainStore(alerts).verdict(args.incident, IncidentStore(alerts).get(args.incident))
    print(json.dumps({"incident": args.incident, **verdict.to_json()}, ensure_ascii=False, indent=2))
    return 0 if verdict.ok else 1


def _broker_files(args: argparse.Namespace) -> int:
    from hub import adapters
    from hub.credentials import Credentials, broker_files

    settings = _settings(args)
    if settings is None:
        return 2
    loaded = adapters.load(settings.adapter_modules)
    writers = adapters.broker_accounts(loaded)
    unknown = sorted(set(args.new_password) - set(writers))
    if unknown:
        print(f"smarthub: no adapter needs a broker account {', '.join(unknown)}", file=sys.stderr)
        return 2
    try:  # refuse before any account is made: a password made and never printed would be lost
        broker_files([], settings.root, settings.mqtt_url, (), {login: ("", w) for login, w in writers.items()})
    except ValueError as exc:
        print(f"smarthub: {exc}", file=sys.stderr)
        return 2
    credentials = Credentials(settings.data_dir, settings.database_url)
    try:
        # A vendor system's account is made the first time (or again on --new-password): its password is
        # printed once, for the vendor's own config (Frigate's mqtt.user/password); only the hash is kept.
        known = credentials.vendors
        new = {login: credentials.add_vendor(login) for login in writers
               if login not in known or login in args.new_password}
        hashes = credentials.vendors
        accounts = credentials.devices
    finally:
        credentials.close()
    vendors = {login: (hashes[login], writes) for login, writes in writers.items()}
    passwd, acl = broker_files(accounts, settings.root, settings.mqtt_url, adapters.mqtt_filters(loaded), vendors)
    args.dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("passwd", passwd), ("acl", acl)):
        path = args.dir / name
        path.write_text(text)
        path.chmod(0o640)
    print(json.dumps({"passwd": str(args.dir / "passwd"), "acl": str(args.dir / "acl"),
                      "accounts": passwd.count("\n"),
                      "vendors": {login: {"writes": writes, **({"password": new[login]} if login in new else {})}
                                  for login, writes in writers.items()}}))
    return 0


OUT_START_MS = 1_780_272_000_000
"""2026-06-01T08:00+08:00: a fixed start for `--out`, so a seed alone decides the file's bytes."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smarthub", description="Smart-community IoT hub")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the hub (settings from SMARTHUB_* variables or --config)")
    run.add_argument("--config", type=Path, help="TOML file with the same keys as the SMARTHUB_* variables")
    run.set_defaults(func=_run)
    check = sub.add_parser("check-config", help="print the settings the hub would use, or what is wrong")
    check.add_argument("--config", type=Path)
    check.set_defaults(func=_check_config)

    from simulators.community import SCENARIOS

    sim = sub.add_parser(
        "simulate", help="run simulated devices of every kind against a broker (or into a file)",
        epilog="scenarios:\n" + "\n".join(f"  {k:<22}{v}" for k, v in SCENARIOS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("--mqtt", default="mqtt://127.0.0.1:1883", help="broker URL (mqtt://user:pass@host:port)")
    sim.add_argument("--site", default="sunshine", help="site slug of the simulated community")
    sim.add_argument("--seed", type=int, default=1, help="the same seed gives the same community and traffic")
    sim.add_argument("--devices", type=int, default=100, help="how many devices, across every kind")
    sim.add_argument("--layout", type=Path, help="TOML file with device counts per kind (and buildings)")
    sim.add_argument("--duration", type=float, help="simulated seconds to run (default: until stopped)")
    sim.add_argument("--speed", type=float, default=1.0, help="simulated time runs this many times faster")
    sim.add_argument("--scenario", choices=sorted(SCENARIOS), help="a scripted incident on top of normal traffic")
    sim.add_argument("--root", default="community", help="topic root")
    sim.add_argument("--start", help="simulated start time, ISO 8601 (default: now; for --out a fixed date)")
    sim.add_argument("--out", type=Path, help="write messages as JSON lines to this file instead of a broker")
    sim.add_argument("--registry-out", type=Path,
                     help="also write the community's registry (buildings, power cap) for the hub's SMARTHUB_REGISTRY")
    sim.add_argument("--ocpp-chargers", type=int, default=0, metavar="N",
                     help="run the first N chargers as OCPP 1.6J charge points on the hub's WebSocket instead of MQTT"
                          " (their passwords go into the hub's accounts store, as `smarthub device add` makes them)")
    sim.add_argument("--hub-url", help="the hub's HTTP address for the OCPP chargers and --vendor (default: its "
                     "SMARTHUB_HTTP)")
    sim.add_argument("--config", type=Path, help="the hub's settings, for its accounts store (--ocpp-chargers)")
    sim.add_argument("--vendor", choices=["hikvision", "frigate"],
                     help="speak a vendor's protocol instead of the contract (hikvision: ISAPI event pushes to the "
                     "hub's HTTP server, the hub needs adapters.hikvision in SMARTHUB_ADAPTERS; frigate: an NVR's "
                     "MQTT topics for four cameras on --mqtt, the hub needs adapters.frigate, --duration defaults "
                     "to an hour)")
    sim.add_argument("--login", action="append", metavar="KIND/DEVICE:PASSWORD",
                     help="with --vendor hikvision: a device account (smarthub device add SITE KIND DEVICE); "
                     "repeatable")
    sim.add_argument("--digest", action="store_true", help="with --vendor hikvision: log in with HTTP Digest "
                     "(MD5, as the devices' HTTP listening host login does) instead of Basic")
    sim.add_argument("--rate", type=float, default=5.0, help="with --vendor hikvision: posts per second, across "
                     "the devices")
    sim.add_argument("--frigate-prefix", default="frigate", help="with --vendor frigate: Frigate's topic_prefix")
    sim.add_argument("--throws", type=int, default=0, help="with --vendor frigate: this many high-altitude throws "
                     "(高空抛物) from the facade camera's building, evenly spread over --duration")
    sim.set_defaults(func=_simulate)

    demo = sub.add_parser("demo", help="broker, store, hub, a simulated community and the dashboard in one process")
    demo.add_argument("--devices", type=int, default=100, help="simulated devices, across every kind")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--site", default="sunshine")
    demo.add_argument("--speed", type=float, default=1.0, help="simulated time runs this many times faster")
    demo.add_argument("--scenario", choices=sorted(SCENARIOS), help="a scripted incident a minute in")
    demo.add_argument("--http", help="host:port of the dashboard and API (default 127.0.0.1:8080, or a free port)")
    demo.add_argument("--mqtt-port", type=int, default=1883, help="embedded broker port (a free one if taken)")
    demo.add_argument("--history", type=float, default=48, metavar="HOURS",
                      help="simulated past to store first, in the background, so the charts have a yesterday (0: none)")
    demo.set_defaults(func=_demo)

    device = sub.add_parser("device", help="device accounts for the broker")
    device_sub = device.add_subparsers(dest="device_command", required=True)
    add = device_sub.add_parser("add", help="register a device; prints its MQTT username and password once")
    add.add_argument("site")
    add.add_argument("kind")
    add.add_argument("device")
    add.add_argument("--config", type=Path)
    add.set_defaults(func=_device_add)
    user = sub.add_parser("user", help="API users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    user_add = user_sub.add_parser("add", help="create (or replace) an API user; prints its token once")
    user_add.add_argument("name")
    user_add.add_argument("--role", choices=["viewer", "maintenance", "operator", "admin", "police"], required=True,
                          help="police (警务): reads incidents and exports their evidence, nothing else")
    user_add.add_argument("--config", type=Path)
    user_add.set_defaults(func=_user_add)
    user_list = user_sub.add_parser("list", help="the API users and their roles (never tokens)")
    user_list.add_argument("--config", type=Path)
    user_list.set_defaults(func=_user_list)
    user_remove = user_sub.add_parser("remove", help="delete an API user; its token stops working at once")
    user_remove.add_argument("name")
    user_remove.add_argument("--config", type=Path)
    user_remove.set_defaults(func=_user_remove)
    evidence = sub.add_parser("evidence", help="check evidence packages and incidents' hash chains")
    evidence_sub = evidence.add_subparsers(dest="evidence_command", required=True)
    verify = evidence_sub.add_parser("verify", help="check an exported evidence archive (exit 1 if it fails)")
    verify.add_argument("archive", type=Path)
    verify.add_argument("--hub", action="store_true", help="also check against this hub's data dir that it issued "
                       "the archive (audit log) and that its chain is the incident's chain here")
    verify.add_argument("--config", type=Path)
    verify.set_defaults(func=_evidence_verify)
    chained = evidence_sub.add_parser("chain", help="check a stored incident against its hash chain (exit 1 if "
                                      "it fails)")
    chained.add_argument("incident")
    chained.add_argument("--config", type=Path)
    chained.set_defaults(func=_evidence_chain)
    files = sub.add_parser("broker-files", help="write Mosquitto passwd and acl files for every device, the hub and "
                           "the vendor systems that publish on the broker (Frigate: its password printed once)")
    files.add_argument("dir", type=Path)
    files.add_argument("--new-password", action="append", default=[], metavar="LOGIN",
                       help="give a vendor system's account (frigate) a new password, printed once")
    files.add_argument("--config", type=Path)
    files.set_defaults(func=_broker_files)
    return p


def main(argv: list[str] | None = None) -> int:
    from hub.statedb import StateError

    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except StateError as exc:  # SMARTHUB_DATABASE_URL unreachable past the retries, or a schema too new
        print(f"smarthub: state database: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
