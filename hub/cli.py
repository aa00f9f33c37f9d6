"""`smarthub` command line: argument parsing only; the work lives in the modules it calls."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

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
    from hub.registry import RegistryError

    settings = _settings(args)
    if settings is None:
        return 2
    _setup_logging(settings.log_level)
    try:
        asyncio.run(serve(settings))
    except RegistryError as exc:
        print(f"smarthub: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def _check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    print(json.dumps(settings.redacted(), indent=2, ensure_ascii=False))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smarthub", description="Smart-community IoT hub")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the hub (settings from SMARTHUB_* variables or --config)")
    run.add_argument("--config", type=Path, help="TOML file with the same keys as the SMARTHUB_* variables")
    run.set_defaults(func=_run)
    check = sub.add_parser("check-config", help="print the settings the hub would use, or what is wrong")
    check.add_argument("--config", type=Path)
    check.set_defaults(func=_check_config)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
