"""Protocol adapters: edges that speak something other than the MQTT contract and feed the same pipeline.

An adapter is a module (listed in the `adapters` setting) exposing `ADAPTER`: a name and the ASGI routes it
serves on the hub's HTTP app (a WebSocket endpoint, say). It turns what its devices say into contract
messages and hands them to `Hub.ingest`, so validation, outbox, alerts and screens cannot tell them from MQTT;
the hub never learns which protocol, or which kind, an adapter serves.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from hub.app import Hub


class IngestHeld(Exception):
    """`Hub.ingest` takes nothing now (the outbox is at its cap while the store is away); the text says why."""


class Adapter(Protocol):
    name: str

    def routes(self, hub: Hub) -> Sequence[BaseRoute]:
        """The routes to mount on the hub's HTTP app (called once per app)."""
        ...


def load(modules: Sequence[str]) -> list[Adapter]:
    """Each listed module's `ADAPTER`; a module that is missing or has none fails the start, naming it."""
    adapters = []
    for name in modules:
        module = importlib.import_module(name)
        adapter = getattr(module, "ADAPTER", None)
        if adapter is None:
            raise ImportError(f"adapter module {name!r} has no ADAPTER")
        adapters.append(adapter)
    return adapters
