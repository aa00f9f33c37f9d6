"""Protocol adapters: edges that speak something other than the MQTT contract and feed the same pipeline.

An adapter is a module (listed in the `adapters` setting) exposing `ADAPTER`: a name and the ASGI routes it
serves on the hub's HTTP app (a WebSocket endpoint, say). It turns what its devices say into contract
messages and hands them to `Hub.ingest`, so validation, outbox, alerts and screens cannot tell them from MQTT;
the hub never learns which protocol, or which kind, an adapter serves.

An adapter may also consume MQTT topics outside the contract on the hub's own connection (a vendor system that
publishes on the same broker): `mqtt_filters()` names the filters, `mqtt_handler(hub)` maps one message to
contract messages (or dead letters). The hub subscribes to the filters with its own, runs what the handler gives
through the same pipeline, and acknowledges the vendor's QoS 1 message only after the outbox commit, as for its own.
An adapter whose messages link a vendor's media server names its URLs in `media_origins()`, so evidence exports
may fetch from it (hub/incidents/export.py).
"""

from __future__ import annotations

import base64
import binascii
import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from starlette.routing import BaseRoute

from hub.ingest.decode import Rejected

if TYPE_CHECKING:
    from hub.app import Hub

Contract = tuple[str, bytes]
"""A contract message: (topic under the hub's root, JSON payload)."""
MqttHandler = Callable[[str, bytes, bool, int], Iterable[Contract | Rejected]]
"""(vendor topic, payload, retained, received ms) -> contract messages to ingest and dead letters to keep. Pure
mapping plus whatever memory the adapter keeps; it never commits (the MQTT edge does, before acknowledging)."""


def basic_auth(header: str) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic ...` header, or None: devices that authenticate over HTTP
    (OCPP security profile 1, vendors' pushes) give their id and the password `smarthub device add` printed."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class IngestHeld(Exception):
    """`Hub.ingest` takes nothing now (the outbox is at its cap while the store is away); the text says why."""


class Adapter(Protocol):
    name: str

    def routes(self, hub: Hub) -> Sequence[BaseRoute]:
        """The routes to mount on the hub's HTTP app (called once per app)."""
        ...


@runtime_checkable
class MqttAdapter(Protocol):
    """An adapter that also consumes vendor topics on the hub's MQTT connection."""

    def mqtt_filters(self) -> Sequence[str]:
        """Topic filters outside the contract root (the hub's broker account must be allowed to read them)."""
        ...

    def mqtt_handler(self, hub: Hub) -> MqttHandler:
        """The handler for messages on those filters (called once per hub)."""
        ...


@runtime_checkable
class BrokerWriters(Protocol):
    """An adapter whose vendor system publishes on the hub's broker itself (Frigate) and so needs an account."""

    def broker_accounts(self) -> Mapping[str, Sequence[str]]:
        """The vendor's broker login -> the topic filters it may publish to (and nothing else: no reads)."""
        ...


def broker_accounts(adapters: Sequence[Adapter]) -> dict[str, list[str]]:
    """Every vendor account the adapters need on the broker, with its write filters (`smarthub broker-files`)."""
    out: dict[str, list[str]] = {}
    for adapter in adapters:
        if isinstance(adapter, BrokerWriters):
            for login, filters in adapter.broker_accounts().items():
                out.setdefault(login, [])
                out[login] += [f for f in filters if f not in out[login]]
    return out


def mqtt_filters(adapters: Sequence[Adapter]) -> list[str]:
    """Every vendor topic filter the adapters consume, in order, without repeats (subscriptions and broker ACL)."""
    out: list[str] = []
    for adapter in adapters:
        if isinstance(adapter, MqttAdapter):
            out += [f for f in adapter.mqtt_filters() if f not in out]
    return out


def media_origins(adapters: Sequence[Adapter]) -> frozenset[str]:
    """The origins (scheme://host:port) of the media servers adapters link to (a vendor NVR's API): an evidence
    export fetches snapshots and clips from these only. An adapter declares them with `media_origins()`."""
    from hub.incidents.export import origins

    urls: list[str] = []
    for adapter in adapters:
        declared = getattr(adapter, "media_origins", None)
        if callable(declared):
            urls += declared()
    return origins(urls)


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
