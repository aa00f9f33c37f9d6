"""Drive a simulated community: to a file of JSON lines (no broker), or live over MQTT.

Both share one discrete-event schedule: a heap of (simulated time, device) wake-ups.
Offline it runs as fast as it can and is exactly reproducible; live it paces
simulated time against the clock (`speed` times faster) and gives every device
its own MQTT connection, with its own last will on its `state` topic, so killing
the process looks to the hub like devices losing power.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import resource
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import aiomqtt
import orjson

from hub.config import MqttTarget
from simulators.base import OFFLINE_STATE, Emit, SimDevice
from simulators.community import Community

Rounds = Callable[[int], list[tuple[SimDevice, list[Emit]]]]
"""What a hub would command at a simulated time: (device, what it publishes in answer)."""

log = logging.getLogger(__name__)

STAGGER_MS = 10_000
"""Devices come online spread over this much simulated time, as a real estate does after power returns."""
OFFLINE_FOR_MS = 180_000
CONNECTS_AT_ONCE = 64


@dataclass(order=True)
class Wake:
    at_ms: int
    order: int
    action: str = field(compare=False)  # start | step | offline


def schedule(community: Community, start_ms: int, offline: list[SimDevice]) -> list[Wake]:
    """The initial heap: each device's start (staggered), and power cuts of a mass_offline scenario."""
    from simulators.community import SCENARIO_DELAY_MS

    heap = [Wake(start_ms + d.rng.randrange(STAGGER_MS), i, "start") for i, d in enumerate(community.devices)]
    index = {id(d): i for i, d in enumerate(community.devices)}
    heap += [Wake(start_ms + SCENARIO_DELAY_MS, index[id(d)], "offline") for d in offline]
    heapq.heapify(heap)
    return heap


def advance(community: Community, heap: list[Wake], until_ms: int) -> Iterator[tuple[Wake, list[Emit]]]:
    """Pop every wake-up due by `until_ms`; yield it with what its device publishes."""
    down = community.down
    while heap and heap[0].at_ms <= until_ms:
        wake = heapq.heappop(heap)
        device = community.devices[wake.order]
        if wake.action == "offline":
            down.add(wake.order)
            heapq.heappush(heap, Wake(wake.at_ms + OFFLINE_FOR_MS, wake.order, "start"))
            yield wake, [("state", {"online": False})]  # what the broker publishes as its last will
            continue
        if wake.action == "step" and wake.order in down:
            continue  # a step scheduled before the power cut; the device restarts later
        if wake.action == "start":
            down.discard(wake.order)
            emits, next_ms = device.start(wake.at_ms)
        else:
            emits, next_ms = device.step(wake.at_ms)
        heapq.heappush(heap, Wake(max(next_ms, wake.at_ms + 1), wake.order, "step"))
        yield wake, emits


def topic(root: str, device: SimDevice, channel: str) -> str:
    return f"{root}/{device.site}/{device.kind_name}/{device.device}/{channel}"


def messages(community: Community, root: str, start_ms: int, until_ms: int,
             offline: list[SimDevice] | None = None, rounds: Rounds | None = None,
             every_ms: int = 30_000) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(time ms, topic, payload) of everything the community publishes from `start_ms` to `until_ms`, in order,
    as fast as it can be computed (no broker, no clock). `rounds`, called every `every_ms` of simulated time,
    stands in for what a hub would command meanwhile (orderly charging: `simulators.charger.orderly`)."""
    heap = schedule(community, start_ms, offline or [])
    t = start_ms
    while True:
        t = min(until_ms, t + every_ms) if rounds is not None else until_ms
        for wake, emits in advance(community, heap, t):
            device = community.devices[wake.order]
            for channel, payload in emits:
                yield wake.at_ms, topic(root, device, channel), payload
        for device, emits in rounds(t) if rounds is not None else ():
            for channel, payload in emits:
                yield t, topic(root, device, channel), payload
        if t >= until_ms:
            return


def run_to_file(community: Community, root: str, start_ms: int, duration_ms: int, out: IO[bytes],
                offline: list[SimDevice] | None = None) -> int:
    """Write every message as a JSON line {t, topic, payload}; returns how many."""
    count = 0
    for t, name, payload in messages(community, root, start_ms, start_ms + duration_ms, offline):
        out.write(orjson.dumps({"t": t, "topic": name, "payload": payload}))
        out.write(b"\n")
        count += 1
    return count


def raise_open_files_limit(needed: int) -> None:
    """One connection per device needs one file descriptor each; lift the soft limit if we may."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 256
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < want:
            log.warning("open-file limit %d is below the %d connections asked for", new, needed)


@dataclass
class LiveStats:
    devices: int
    connected: int = 0
    sent: int = 0
    commands: int = 0
    started: float = field(default_factory=time.monotonic)


class LiveRun:
    """A community on a real broker, one connection per device."""

    def __init__(self, community: Community, target: MqttTarget, root: str, speed: float = 1.0,
                 status: Callable[[LiveStats, int], None] | None = None,
                 logins: Callable[[SimDevice], tuple[str, str]] | None = None) -> None:
        self.community = community
        self.target = target
        self.logins = logins
        """Each device's own (username, password), as a broker with per-device accounts needs; else the target's."""
        self.root = root
        self.speed = speed
        self.status = status
        self.stats = LiveStats(len(community.devices))
        self.clients: dict[int, aiomqtt.Client] = {}
        self.stopping = False
        self._sim_now = 0

    def _client(self, device: SimDevice) -> aiomqtt.Client:
        user, password = self.logins(device) if self.logins else (self.target.username, self.target.password)
        return aiomqtt.Client(
            self.target.host, self.target.port, username=user, password=password,
            identifier=f"sim-{device.site}-{device.device}", tls_context=self.target.tls, keepalive=60,
            will=aiomqtt.Will(topic(self.root, device, "state"), orjson.dumps(OFFLINE_STATE), qos=1, retain=True),
        )

    async def _connect(self, index: int, gate: asyncio.Semaphore) -> None:
        device = self.community.devices[index]
        async with gate:
            client = self._client(device)
            await client.__aenter__()
            await client.subscribe(topic(self.root, device, "cmd"), qos=1)
        self.clients[index] = client
        self.stats.connected += 1
        asyncio.get_running_loop().create_task(self._serve_commands(index, client), name=f"cmd-{device.device}")

    async def _serve_commands(self, index: int, client: aiomqtt.Client) -> None:
        device = self.community.devices[index]
        try:
            async for message in client.messages:
                reply, emits = device.command(self._sim_now, bytes(message.payload))  # type: ignore[arg-type]
                self.stats.commands += 1
                if reply is not None:
                    await self._publish(index, [("reply", reply), *emits])
        except aiomqtt.MqttError:
            pass

    async def _publish(self, index: int, emits: list[Emit]) -> None:
        client = self.clients.get(index)
        if client is None:
            return
        device = self.community.devices[index]
        for channel, payload in emits:
            try:
                await client.publish(topic(self.root, device, channel), orjson.dumps(payload), qos=1,
                                     retain=channel == "state")
                self.stats.sent += 1
            except aiomqtt.MqttError as exc:
                log.debug("%s could not publish: %s", device.device, exc)

    async def _power_cut(self, index: int) -> None:
        """Drop the connection without DISCONNECT, so the broker publishes the device's last will."""
        client = self.clients.pop(index, None)
        if client is not None:
            client._client._sock_close()  # noqa: SLF001 - an abrupt loss, as in a power cut
            self.stats.connected -= 1

    async def run(self, start_ms: int, duration_ms: int | None, offline: list[SimDevice] | None = None) -> None:
        devices = self.community.devices
        raise_open_files_limit(len(devices))
        gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
        await asyncio.gather(*(self._connect(i, gate) for i in range(len(devices))))
        heap = schedule(self.community, start_ms, offline or [])
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        last_status = 0.0
        end_ms = start_ms + duration_ms if duration_ms is not None else None
        while not self.stopping and (end_ms is None or self._sim_now < end_ms):
            self._sim_now = start_ms + int((loop.time() - t0) * self.speed * 1000)
            for wake, emits in list(advance(self.community, heap, self._sim_now)):
                if wake.action == "offline":
                    await self._power_cut(wake.order)  # the broker publishes the will, not us
                    continue
                if wake.order not in self.clients:
                    await self._connect(wake.order, gate)
                await self._publish(wake.order, emits)
            if self.status and loop.time() - last_status >= 1:
                last_status = loop.time()
                self.status(self.stats, self._sim_now)
            wait_ms = (heap[0].at_ms - self._sim_now) / self.speed if heap else 1000
            await asyncio.sleep(min(1.0, max(0.0, wait_ms / 1000)))

    def stop(self) -> None:
        """End `run` at its next tick (within a second). A flag, not a task cancel: Python 3.11's
        asyncio.wait_for (inside every aiomqtt call) can swallow a cancel that lands as its call finishes."""
        self.stopping = True

    async def serve(self, start_ms: int, duration_ms: int | None, offline: list[SimDevice] | None = None) -> None:
        """`run` until its duration ends or SIGINT / SIGTERM comes, then `close`: devices say goodbye."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        try:
            await self.run(start_ms, duration_ms, offline)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.close()

    async def close(self) -> None:
        """Each connected device publishes its retained `state` offline, then disconnects cleanly (which sends
        no last will: without the goodbye the wall would show gone devices online)."""
        await asyncio.gather(*(self._publish(index, self.community.devices[index].stop()) for index in self.clients))
        for client in self.clients.values():
            try:
                await client.__aexit__(None, None, None)
            except aiomqtt.MqttError:
                pass
        self.clients.clear()


def status_line(stats: LiveStats, sim_ms: int) -> None:
    """One self-overwriting line on a terminal: connections, messages, rate, simulated time."""
    from simulators.base import iso

    elapsed = max(1e-9, time.monotonic() - stats.started)
    sys.stderr.write(f"\r{stats.connected}/{stats.devices} devices connected, {stats.sent} messages sent, "
                     f"{stats.sent / elapsed:.0f} msg/s, {stats.commands} commands, simulated {iso(sim_ms)[:19]}  ")
    sys.stderr.flush()


def describe(community: Community) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for d in community.devices:
        counts[d.kind_name] = counts.get(d.kind_name, 0) + 1
    return counts
