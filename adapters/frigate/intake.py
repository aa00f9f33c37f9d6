"""Frigate on the hub's own MQTT connection: the thin edge between Frigate's topics and the pipeline.

The hub subscribes to `mqtt_filters()` beside the contract's filters and hands each message here
(hub/adapters.py); `mapping` (pure) turns it into contract messages for the registry device whose
`aliases.frigate` is the Frigate camera's name, or into a dead letter that keeps Frigate's payload. The hub
runs the messages through the pipeline and acknowledges Frigate's QoS 1 message only after the outbox commit.

Settings (environment): `SMARTHUB_FRIGATE_URL`, the base URL of Frigate's API for snapshot and clip links
(`http://frigate:5000`; unset: no links), and `SMARTHUB_FRIGATE_TOPIC_PREFIX`, Frigate's `mqtt.topic_prefix`
(default `frigate`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import orjson
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.routing import BaseRoute

from adapters.frigate import mapping
from adapters.frigate.mapping import KIND, Camera, Memory, Message
from hub.adapters import Contract, MqttHandler
from hub.ingest.decode import Rejected
from hub.registry import Registry

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)

ALIAS = "frigate"
"""The registry's `aliases` key that names a device's Frigate camera."""
ACCOUNT = "frigate"
"""Frigate's broker login (its `mqtt.user`), made by `smarthub broker-files` (the password shown once)."""


class FrigateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTHUB_FRIGATE_", extra="ignore", env_ignore_empty=True)
    url: str | None = Field(None, pattern=r"^https?://\S+$", description="Frigate's API base URL, for links")
    topic_prefix: str = Field("frigate", pattern=r"^[A-Za-z0-9_-]{1,64}$")


def cameras(registry: Registry) -> dict[str, Camera]:
    """Frigate camera name -> our camera device, from the registry's `aliases.frigate`; zone rules whose label
    the contract does not know are left out (and logged), so one typo does not refuse every detection."""
    out: dict[str, Camera] = {}
    for device in registry:
        name = device.aliases.get(ALIAS)
        if name is None or device.kind != KIND:
            continue
        zones = {}
        for zone, rule in device.zones.items():
            if rule.label in mapping.DOMAIN_LABELS:
                zones[zone] = rule
            else:
                log.warning("registry %s/%s: zone %s has label %r, not a camera label; rule ignored",
                            device.site, device.device, zone, rule.label)
        out[name] = Camera(device.site, device.device, zones)
    return out


class Intake:
    """One hub's Frigate intake: the registry's view (rebuilt when the registry grows) and the mapping's memory."""

    def __init__(self, root: str, registry: Registry, settings: FrigateSettings) -> None:
        self.root = root
        self.registry = registry
        self.settings = settings
        self.memory = Memory()
        self._cameras: dict[str, Camera] = {}
        self._registry_size = -1

    @property
    def cameras(self) -> dict[str, Camera]:
        if len(self.registry) != self._registry_size:  # `smarthub device add` while running, or the first call
            self._registry_size = len(self.registry)
            self._cameras = cameras(self.registry)
        return self._cameras

    def __call__(self, topic: str, payload: bytes, retain: bool, received_ms: int) -> Iterable[Contract | Rejected]:
        which = mapping.route(topic, self.settings.topic_prefix)
        if which is None:
            return ()
        cams = self.cameras
        if which[0] == "events":
            results = mapping.event(payload, cams, self.memory, self.settings.url, received_ms)
        elif which[0] == "reviews":
            results = mapping.review(payload, cams, self.memory, received_ms)
        elif which[0] == "available":
            results = mapping.available(payload, cams)
        else:
            results = mapping.status(which[1], which[2], payload, cams, received_ms)
        return [self._contract(m) if isinstance(m, Message) else
                Rejected.of(topic, m.reason, m.detail, payload, received_ms, KIND) for m in results]

    def _contract(self, m: Message) -> Contract:
        return (f"{self.root}/{m.site}/{KIND}/{m.device}/{m.channel}", orjson.dumps(m.payload))


class FrigateAdapter:
    """The hub's adapter seam (hub/adapters.py): no HTTP routes, Frigate's topics on the hub's MQTT link."""

    name = "frigate"

    def routes(self, hub: Hub) -> Sequence[BaseRoute]:
        return []

    def mqtt_filters(self) -> Sequence[str]:
        prefix = FrigateSettings().topic_prefix
        return [f"{prefix}/events", f"{prefix}/reviews", f"{prefix}/available", f"{prefix}/+/status/+"]

    def media_origins(self) -> list[str]:
        """Frigate's API, which the snapshot and clip links point at: evidence exports fetch from it."""
        url = FrigateSettings().url
        return [url] if url else []

    def mqtt_handler(self, hub: Hub) -> MqttHandler:
        return Intake(hub.settings.root, hub.registry, FrigateSettings())

    def broker_accounts(self) -> Mapping[str, Sequence[str]]:
        """Frigate logs in as `frigate` and publishes under its prefix only: it reads nothing on the hub's broker
        (its own `.../set` command topics included, so nobody drives it through this broker)."""
        return {ACCOUNT: [f"{FrigateSettings().topic_prefix}/#"]}
