"""The MQTT edge: one persistent session, QoS 1 subscriptions, reconnect with backoff.

aiomqtt owns the connection (connect, subscribe, publish, errors). The receive
hot path bypasses its per-message `Message`/`Topic` objects and async iterator,
which cost about twice paho's own callback (STACK-NOTES section 8): a plain paho
`on_message` appends raw tuples to a list and the pipeline takes them in one
batch per event-loop turn.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Callable

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.config import MqttTarget

log = logging.getLogger(__name__)

RawMessage = tuple[str, bytes, bool]
"""(topic, payload, retain)"""

SESSION_EXPIRY_S = 7 * 24 * 3600
"""On MQTT 5 the broker keeps our session (and queues QoS 1 messages) this long while we are away."""
RECEIVE_MAXIMUM = 65_535
"""MQTT 5: how many unacknowledged QoS 1 messages the broker may send us at once."""
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0


class MqttLink:
    """Keeps the hub connected and feeds every received message batch to `on_batch`."""

    def __init__(
        self,
        target: MqttTarget,
        client_id: str,
        subscriptions: list[str],
        on_batch: Callable[[list[RawMessage], int], None],
        protocol: str = "5",
    ) -> None:
        self.target = target
        self.client_id = client_id
        self.subscriptions = subscriptions
        self.on_batch = on_batch
        self.protocol = protocol
        self.connected = False
        self.connects = 0
        self._client: aiomqtt.Client | None = None
        self._inbox: list[RawMessage] = []
        self._drain_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def _make_client(self) -> aiomqtt.Client:
        v5 = self.protocol == "5"
        kwargs: dict[str, Any] = {}
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            props.ReceiveMaximum = RECEIVE_MAXIMUM
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props)
        else:
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V311, clean_session=False)
        client = aiomqtt.Client(
            self.target.host,
            self.target.port,
            username=self.target.username,
            password=self.target.password,
            identifier=self.client_id,
            tls_context=self.target.tls,
            keepalive=30,
            **kwargs,
        )
        client._client.on_message = self._on_message  # noqa: SLF001 - the hot path, see module docstring
        return client

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        self._inbox.append((message.topic, message.payload, message.retain))
        if not self._drain_scheduled:
            self._drain_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        batch, self._inbox = self._inbox, []
        if batch:
            self.on_batch(batch, time.time_ns() // 1_000_000)

    async def run(self) -> None:
        """Connect, subscribe and stay connected until cancelled."""
        self._loop = asyncio.get_running_loop()
        backoff = BACKOFF_MIN_S
        self._client = self._make_client()
        while True:
            try:
                async with self._client as client:
                    for topic in self.subscriptions:
                        await client.subscribe(topic, qos=1)
                    self.connected = True
                    self.connects += 1
                    backoff = BACKOFF_MIN_S
                    log.info("connected to MQTT %s:%d as %s", self.target.host, self.target.port, self.client_id)
                    # Messages arrive through _on_message; wait here until the connection drops.
                    await asyncio.shield(client._disconnected)  # noqa: SLF001
            except aiomqtt.MqttError as exc:
                if self.connected:
                    log.warning("MQTT connection lost: %s", exc)
                else:
                    log.warning("cannot connect to MQTT %s:%d: %s (retrying in %.1fs)",
                                self.target.host, self.target.port, exc, backoff)
            finally:
                self.connected = False
            await asyncio.sleep(backoff * (0.8 + 0.4 * random.random()))
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        """Publish through the hub's own connection; raises aiomqtt.MqttError when it is down."""
        if self._client is None or not self.connected:
            raise aiomqtt.MqttError("not connected to the MQTT broker")
        await self._client.publish(topic, payload, qos=qos, retain=retain)
