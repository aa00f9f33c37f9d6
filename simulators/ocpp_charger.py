"""Simulated chargers that speak OCPP 1.6J to the hub, as piles bought off the shelf do: the `ocpp` library's
ChargePoint as the client over `websockets`, one WebSocket each, with HTTP Basic auth (security profile 1).

Each pile boots, heartbeats at the interval the hub answers, reports its connector's status, and when a car
(`simulators.ev`) arrives authorizes it, starts a transaction, sends MeterValues every few seconds and stops the
transaction when the car is full or leaves. It obeys SetChargingProfile and RemoteStopTransaction. Handlers only
change state and wake the pile's loop: a CALL is never awaited inside a handler (the library serves one message
at a time). A dropped socket is reconnected with backoff; the car and the meter carry on meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import (
    Action,
    AvailabilityStatus,
    ChargingProfileStatus,
    ClearChargingProfileStatus,
    ConfigurationStatus,
    DataTransferStatus,
    GetCompositeScheduleStatus,
    RegistrationStatus,
    RemoteStartStopStatus,
    ResetStatus,
    TriggerMessageStatus,
    UnlockStatus,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from simulators import ev
from simulators.base import SimDevice
from simulators.charger import SESSION_HOURS
from simulators.community import Community

log = logging.getLogger(__name__)
wire_log = logging.getLogger(f"{__name__}.wire")
"""The library logs every frame at INFO: quiet unless turned up."""
wire_log.setLevel(logging.WARNING)

KIND = "charger"
CONNECTOR = 1
SUBPROTOCOL = "ocpp1.6"
VENDOR, MODEL, FIRMWARE = "SmartHub", "SimAC7-OCPP", "sim-1.0"
METER_EVERY_S = 10.0
"""Wall seconds between MeterValues during a transaction (and between the pile's looks at its car)."""
BACKOFF_S = (1.0, 30.0)
"""A lost connection is tried again after 1 s, doubling to 30 s, with jitter."""
RESPONSE_TIMEOUT_S = 30
CONFIGURATION_KEYS = ("HeartbeatInterval", "MeterValueSampleInterval", "NumberOfConnectors",
                      "ChargingScheduleAllowedChargingRateUnit", "ChargeProfileMaxStackLevel",
                      "MeterValuesSampledData")
WRITABLE_KEYS = ("HeartbeatInterval", "MeterValueSampleInterval")
COMPOSITE_STEP_S = 60


def iso(ms: int) -> str:
    """Simulated epoch ms as OCPP's dateTime (UTC, Z)."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@dataclass
class SimClock:
    """Simulated epoch ms running `speed` times faster than the wall clock from `start_ms`."""

    start_ms: int
    speed: float = 1.0
    t0: float = field(default_factory=time.monotonic)

    def __call__(self) -> int:
        return self.start_ms + int((time.monotonic() - self.t0) * self.speed * 1000)


@dataclass
class Pile:
    """What the pile knows, across connections: its meter, the car plugged in, the transaction, the profiles."""

    meter_wh: float
    status: str = "Available"
    car: ev.Car | None = None
    transaction_id: int | None = None
    tx_start_ms: int | None = None
    power_w: float = 0.0
    profiles: list[ev.Stored] = field(default_factory=list)
    last_ms: int | None = None
    available: bool = True


class SimChargePoint(ChargePoint):
    """The library's ChargePoint with the handlers of a pile; each changes the owner's state and wakes it."""

    def __init__(self, owner: OcppCharger, connection: Any) -> None:
        super().__init__(owner.device, connection, response_timeout=RESPONSE_TIMEOUT_S, logger=wire_log)
        self.owner = owner

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]
                                ) -> call_result.SetChargingProfile:
        pile = self.owner.pile
        stored = ev.Stored(connector_id, cs_charging_profiles, self.owner.clock())
        tx = pile.transaction_id if connector_id == CONNECTOR else None
        profiles, why = ev.accept(pile.profiles, stored, tx)
        if why is not None or connector_id not in (0, CONNECTOR):
            log.info("%s rejects a charging profile: %s", self.owner.device, why or "no such connector")
            return call_result.SetChargingProfile(status=ChargingProfileStatus.rejected)
        pile.profiles = profiles
        self.owner.wake.set()  # draw the new limit and report it now, not at the next sample
        return call_result.SetChargingProfile(status=ChargingProfileStatus.accepted)

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, **p: Any) -> call_result.ClearChargingProfile:
        pile = self.owner.pile
        pile.profiles, found = ev.clear(pile.profiles, p.get("id"), p.get("connector_id"),
                                        p.get("charging_profile_purpose"), p.get("stack_level"))
        self.owner.wake.set()
        return call_result.ClearChargingProfile(
            status=ClearChargingProfileStatus.accepted if found else ClearChargingProfileStatus.unknown)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, connector_id: int, duration: int, **p: Any
                                  ) -> call_result.GetCompositeSchedule:
        if connector_id not in (0, CONNECTOR):
            return call_result.GetCompositeSchedule(status=GetCompositeScheduleStatus.rejected)
        now = self.owner.clock()
        unit = p.get("charging_rate_unit") or "W"
        return call_result.GetCompositeSchedule(
            status=GetCompositeScheduleStatus.accepted, connector_id=connector_id, schedule_start=iso(now),
            charging_schedule={"duration": duration, "charging_rate_unit": unit,
                               "charging_schedule_period": self.owner.composite(now, duration, unit)})

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, transaction_id: int) -> call_result.RemoteStopTransaction:
        if transaction_id != self.owner.pile.transaction_id:
            return call_result.RemoteStopTransaction(status=RemoteStartStopStatus.rejected)
        self.owner.remote_stop = True
        self.owner.wake.set()
        return call_result.RemoteStopTransaction(status=RemoteStartStopStatus.accepted)

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(self, id_tag: str, **p: Any) -> call_result.RemoteStartTransaction:
        """A resident scanning the pile's code as they plug in: a car arrives with that tag."""
        pile = self.owner.pile
        if pile.car is not None or not pile.available or p.get("connector_id") not in (None, CONNECTOR):
            return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.rejected)
        self.owner.remote_start = id_tag
        self.owner.wake.set()
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str) -> call_result.ChangeAvailability:  # noqa: A002
        pile = self.owner.pile
        pile.available = type == "Operative"
        self.owner.wake.set()
        busy = pile.transaction_id is not None and not pile.available
        return call_result.ChangeAvailability(status=AvailabilityStatus.scheduled if busy
                                              else AvailabilityStatus.accepted)

    @on(Action.reset)
    def on_reset(self, type: str) -> call_result.Reset:  # noqa: A002
        """Accepted; the pile drops its connection and boots again (a transaction in progress carries on)."""
        self.owner.reset = True
        self.owner.wake.set()
        return call_result.Reset(status=ResetStatus.accepted)

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> call_result.GetConfiguration:
        known = self.owner.configuration()
        asked = key or list(known)
        return call_result.GetConfiguration(
            configuration_key=[{"key": k, "readonly": k not in WRITABLE_KEYS, "value": known[k]}
                               for k in asked if k in known],
            unknown_key=[k for k in asked if k not in known] or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str) -> call_result.ChangeConfiguration:
        if key not in CONFIGURATION_KEYS:
            return call_result.ChangeConfiguration(status=ConfigurationStatus.not_supported)
        if key not in WRITABLE_KEYS:
            return call_result.ChangeConfiguration(status=ConfigurationStatus.rejected)
        try:
            seconds = float(value)
        except ValueError:
            return call_result.ChangeConfiguration(status=ConfigurationStatus.rejected)
        if not math.isfinite(seconds) or seconds < 1:
            return call_result.ChangeConfiguration(status=ConfigurationStatus.rejected)
        if key == "HeartbeatInterval":
            self.owner.heartbeat_s = seconds
        else:
            self.owner.meter_every_s = seconds
        return call_result.ChangeConfiguration(status=ConfigurationStatus.accepted)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, **p: Any) -> call_result.TriggerMessage:
        if requested_message not in ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues"):
            return call_result.TriggerMessage(status=TriggerMessageStatus.not_implemented)
        self.owner.triggered.add(requested_message)
        self.owner.wake.set()
        return call_result.TriggerMessage(status=TriggerMessageStatus.accepted)

    @on(Action.unlock_connector)
    def on_unlock_connector(self, connector_id: int) -> call_result.UnlockConnector:
        return call_result.UnlockConnector(status=UnlockStatus.not_supported)

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **p: Any) -> call_result.DataTransfer:
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)


class OcppCharger:
    """One simulated pile: its state (`Pile`), its car model, and the connection loop that keeps it talking."""

    def __init__(self, site: str, device: str, url: str, password: str, rng: random.Random,
                 clock: Callable[[], int], meter_every_s: float = METER_EVERY_S,
                 plugged_at_start: bool | None = None) -> None:
        self.site, self.device = site, device
        self.url = f"{url.rstrip('/')}/ocpp/{site}/{device}"
        self.password = password
        self.rng = rng
        self.clock = clock
        self.meter_every_s = meter_every_s
        self.heartbeat_s = 60.0
        self.pile = Pile(meter_wh=round(rng.uniform(200_000, 9_000_000)))
        self.plugged_at_start = plugged_at_start
        """Whether a car is already plugged in when the pile comes up (None: as likely as the hour says)."""
        self.wake = asyncio.Event()
        self.remote_stop = False
        self.remote_start: str | None = None
        self.reset = False
        self.triggered: set[str] = set()
        self.stopping = False
        self._came_up = False
        self.connected = False
        self.connections = 0
        self.cp: SimChargePoint | None = None
        self._ws: Any = None

    # -- what handlers read ------------------------------------------------------------------------------------

    def configuration(self) -> dict[str, str]:
        return {"HeartbeatInterval": f"{self.heartbeat_s:g}", "MeterValueSampleInterval": f"{self.meter_every_s:g}",
                "NumberOfConnectors": "1", "ChargingScheduleAllowedChargingRateUnit": "Current,Power",
                "ChargeProfileMaxStackLevel": "8",
                "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import,Current.Import,"
                                          "Voltage,SoC"}

    def limit_w(self, now_ms: int) -> float | None:
        pile = self.pile
        return ev.limit_w(pile.profiles, CONNECTOR, now_ms, pile.tx_start_ms, pile.transaction_id)

    def composite(self, now_ms: int, duration_s: int, unit: str) -> list[dict[str, Any]]:
        """The limits in force from now over `duration_s`, sampled each minute, as schedule periods (no limit:
        the pile's own maximum)."""
        periods: list[dict[str, Any]] = []
        pile_max = ev.MAX_CURRENT_A * ev.VOLTAGE_V * ev.PHASES
        for offset in range(0, max(duration_s, 1), COMPOSITE_STEP_S):
            limit = self.limit_w(now_ms + offset * 1000)
            watts = pile_max if limit is None else min(limit, pile_max)
            value = round(watts / (ev.VOLTAGE_V * ev.PHASES), 1) if unit == "A" else round(watts, 1)
            if not periods or periods[-1]["limit"] != value:
                periods.append({"start_period": offset, "limit": value,
                                **({"number_phases": ev.PHASES} if unit == "A" else {})})
        return periods

    # -- the connection loop -----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, boot and serve until `stop`; a lost or refused connection is tried again with backoff."""
        delay = BACKOFF_S[0]
        while not self.stopping:
            try:
                async with connect(self.url, subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                                   additional_headers=basic_auth(self.device, self.password),
                                   open_timeout=10, ping_interval=None) as ws:
                    self._ws = ws
                    delay = BACKOFF_S[0]
                    await self._session(ws)
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError) as exc:
                log.info("%s/%s: connection lost or refused (%s); again in %.0f s", self.site, self.device,
                         exc.__class__.__name__, delay)
            except Exception:  # noqa: BLE001 - a simulated pile never dies of one odd answer: it reconnects
                log.warning("%s/%s: session failed; again in %.0f s", self.site, self.device, delay, exc_info=True)
            finally:
                self.connected, self.cp, self._ws = False, None, None
            if self.stopping:
                break
            await self._sleep(delay * self.rng.uniform(0.8, 1.2))
            delay = min(BACKOFF_S[1], delay * 2)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, cut short by `stop`."""
        self.wake.clear()
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=end - time.monotonic())
            except TimeoutError:
                return
            self.wake.clear()

    async def _session(self, ws: Any) -> None:
        cp = SimChargePoint(self, ws)
        self.cp = cp
        reader = asyncio.create_task(cp.start(), name=f"ocpp-read-{self.device}")
        tasks = {reader}
        try:
            await self._boot(cp)
            self.connected = True
            self.connections += 1
            await self._status(cp, 0, "Available")
            await self._status(cp, CONNECTOR, self.pile.status)
            tasks |= {asyncio.create_task(self._heartbeats(cp), name=f"ocpp-hb-{self.device}"),
                      asyncio.create_task(self._pile_loop(cp), name=f"ocpp-pile-{self.device}")}
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _boot(self, cp: SimChargePoint) -> None:
        """BootNotification until accepted, at the interval the hub answers."""
        while True:
            answer = await cp.call(call.BootNotification(charge_point_vendor=VENDOR, charge_point_model=MODEL,
                                                         firmware_version=FIRMWARE))
            if answer is not None and answer.interval:
                self.heartbeat_s = float(answer.interval)
            if answer is not None and answer.status == RegistrationStatus.accepted:
                return
            await asyncio.sleep(self.heartbeat_s)

    async def _heartbeats(self, cp: SimChargePoint) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            await cp.call(call.Heartbeat())

    async def _status(self, cp: SimChargePoint, connector: int, status: str) -> None:
        await cp.call(call.StatusNotification(connector_id=connector, error_code="NoError", status=status,
                                              timestamp=iso(self.clock())))

    async def _pile_loop(self, cp: SimChargePoint) -> None:
        """Look at the car every `meter_every_s`, or at once when a handler wakes us."""
        while True:
            await self.step(cp)
            if self.reset:
                self.reset = False
                await self._ws.close()
                return
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=self.meter_every_s)
            except TimeoutError:
                pass

    async def step(self, cp: SimChargePoint) -> None:
        """Advance the car to now and say what changed: a car arriving starts a transaction, one full or leaving
        stops it, the power follows the limit in force, a sample goes out while charging."""
        pile, now = self.pile, self.clock()
        dt = now - pile.last_ms if pile.last_ms is not None else 0
        pile.last_ms = now
        if pile.car is not None and pile.transaction_id is not None and dt > 0:
            pile.car, wh = ev.charge(pile.car, pile.power_w, dt)
            pile.meter_wh += wh
        if "BootNotification" in self.triggered:
            await self._boot(cp)
        if "Heartbeat" in self.triggered:
            await cp.call(call.Heartbeat())
        if "StatusNotification" in self.triggered:
            await self._status(cp, CONNECTOR, pile.status)
        if pile.transaction_id is not None:
            reason = ("Remote" if self.remote_stop else "EVDisconnected" if now >= pile.car.departs_ms  # type: ignore[union-attr]
                      else "Local" if pile.car.full else None)  # type: ignore[union-attr]
            if reason is not None:
                await self._stop_transaction(cp, now, reason)
        elif pile.car is not None and now >= pile.car.departs_ms:
            pile.car = None  # unplugged after a finished session
            await self._set_status(cp, "Available" if pile.available else "Unavailable")
        elif pile.car is None and pile.available and self._car_arrives(now, dt):
            pile.car = ev.arriving_car(self.rng, now)
            if self.remote_start:
                pile.car = replace(pile.car, id_tag=self.remote_start)
            self.remote_start = None
            await self._set_status(cp, "Preparing")
            await self._start_transaction(cp, now)
        elif pile.transaction_id is None and not pile.available and pile.status == "Available":
            await self._set_status(cp, "Unavailable")
        elif pile.transaction_id is None and pile.available and pile.status == "Unavailable":
            await self._set_status(cp, "Available")
        self.remote_stop = False
        if pile.transaction_id is not None:
            assert pile.car is not None
            pile.power_w = ev.draw_w(pile.car, self.limit_w(now))
            await self._set_status(cp, "Charging" if pile.power_w > 0 else "SuspendedEVSE")
            await self._meter_values(cp, now)
        elif "MeterValues" in self.triggered:
            await self._meter_values(cp, now)
        self.triggered.clear()

    def _car_arrives(self, now_ms: int, dt_ms: int) -> bool:
        if self.remote_start:
            return True
        if not self._came_up:  # as an estate comes up mid-day: as many cars plugged in as recent hours leave
            self._came_up = True
            if self.plugged_at_start is not None:
                return self.plugged_at_start
            share = min(0.9, sum(ev.arrival_rate(now_ms - k * 3_600_000) for k in range(SESSION_HOURS)))
            return self.rng.random() < share
        return ev.arrives(self.rng, now_ms, dt_ms)

    async def _set_status(self, cp: SimChargePoint, status: str) -> None:
        if status != self.pile.status:
            self.pile.status = status
            await self._status(cp, CONNECTOR, status)

    async def _start_transaction(self, cp: SimChargePoint, now_ms: int) -> None:
        pile = self.pile
        assert pile.car is not None
        auth = await cp.call(call.Authorize(id_tag=pile.car.id_tag))
        if auth is None or auth.id_tag_info.get("status") != "Accepted":
            log.info("%s: tag %s not accepted", self.device, pile.car.id_tag)
            pile.car = None
            await self._set_status(cp, "Available")
            return
        answer = await cp.call(call.StartTransaction(connector_id=CONNECTOR, id_tag=pile.car.id_tag,
                                                     meter_start=int(pile.meter_wh), timestamp=iso(now_ms)))
        if answer is None:
            pile.car = None
            await self._set_status(cp, "Available")
            return
        pile.transaction_id, pile.tx_start_ms = answer.transaction_id, now_ms

    async def _stop_transaction(self, cp: SimChargePoint, now_ms: int, reason: str) -> None:
        pile = self.pile
        transaction_id = pile.transaction_id
        pile.transaction_id, pile.tx_start_ms, pile.power_w = None, None, 0.0
        pile.profiles = ev.end_of_transaction(pile.profiles)
        await self._meter_values(cp, now_ms, transaction_id, "Transaction.End")
        await cp.call(call.StopTransaction(meter_stop=int(pile.meter_wh), timestamp=iso(now_ms),
                                           transaction_id=transaction_id, reason=reason))
        if reason == "EVDisconnected":
            pile.car = None  # it leaves; a full or remotely stopped car stays plugged in until it departs
        await self._set_status(cp, "Finishing" if pile.car is not None else "Available")

    async def _meter_values(self, cp: SimChargePoint, now_ms: int, transaction_id: int | None = None,
                            context: str = "Sample.Periodic") -> None:
        pile = self.pile
        voltage = round(self.rng.gauss(ev.VOLTAGE_V - 1, 1.5), 1)
        samples = [
            {"value": f"{pile.meter_wh:.0f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": f"{pile.power_w:.1f}", "measurand": "Power.Active.Import", "unit": "W"},
            {"value": f"{pile.power_w / voltage / ev.PHASES:.1f}", "measurand": "Current.Import", "unit": "A"},
            {"value": f"{voltage:.1f}", "measurand": "Voltage", "unit": "V"},
        ]
        if pile.car is not None:
            samples.append({"value": f"{pile.car.soc_pct:.1f}", "measurand": "SoC", "unit": "Percent"})
        for sample in samples:
            sample["context"] = context
        await cp.call(call.MeterValues(connector_id=CONNECTOR, transaction_id=transaction_id or pile.transaction_id,
                                       meter_value=[{"timestamp": iso(now_ms), "sampled_value": samples}]))

    def stop(self) -> None:
        """End `run` soon: the socket closes (the hub marks the pile offline)."""
        self.stopping = True
        self.wake.set()
        if self._ws is not None:
            asyncio.get_running_loop().create_task(self._ws.close())


def choose(community: Community, count: int | None = None, share: float | None = None
           ) -> tuple[Community, list[SimDevice]]:
    """Split a community's chargers: (the community left to MQTT, the chargers that speak OCPP instead). `count`
    takes the last chargers; `share` every k-th (a third: the 3rd, 6th, 9th, ...). The first charger stays on
    MQTT either way: the scenarios script their incidents on it."""
    chargers = community.of(KIND)
    if count is not None:
        chosen = chargers[1:][-count:] if count > 0 else []
    elif share:
        every = max(1, round(1 / share))
        chosen = chargers[every - 1::every] if every > 1 else chargers[1:]
    else:
        chosen = []
    ids = {id(d) for d in chosen}
    return Community(community.site, [d for d in community.devices if id(d) not in ids]), chosen


class OcppFleet:
    """Simulated OCPP piles of one process, each with its own connection and task."""

    def __init__(self, devices: Sequence[SimDevice], url: str, passwords: dict[str, str], clock: Callable[[], int],
                 meter_every_s: float = METER_EVERY_S) -> None:
        self.chargers = [OcppCharger(d.site, d.device, url, passwords[d.device], d.rng, clock, meter_every_s)
                         for d in devices]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.get_running_loop().create_task(c.run(), name=f"ocpp-{c.device}")
                       for c in self.chargers]

    @property
    def connected(self) -> int:
        return sum(c.connected for c in self.chargers)

    async def close(self) -> None:
        for charger in self.chargers:
            charger.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def passwords_for(devices: Sequence[SimDevice], add: Callable[[str, str, str], str]) -> dict[str, str]:
    """Each pile's own password, made as `smarthub device add SITE charger ID` makes it (`add` is
    `Credentials.add` of the hub's accounts store): the hub checks it at the pile's handshake."""
    return {d.device: add(d.site, d.kind_name, d.device) for d in devices}


def ws_url(url: str) -> str:
    """The hub's address as given (http://, ws://, or host:port) as the ws:// base the piles connect to."""
    for plain, secure in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(plain):
            return secure + url[len(plain):]
    return url if url.startswith(("ws://", "wss://")) else f"ws://{url}"


def meter_every(speed: float) -> float:
    """Wall seconds between samples: every 30 simulated seconds, as the MQTT chargers report, at least 1 s."""
    return max(1.0, 30 / max(speed, 1e-9))


async def serve_together(live: Any, fleet: OcppFleet, start_ms: int, duration_ms: int | None,
                         offline: list[SimDevice] | None = None) -> None:
    """The MQTT part of a community (`runner.LiveRun.serve`, which stops on SIGINT/SIGTERM) with its OCPP piles
    beside it; the piles close their sockets when it ends."""
    fleet.start()
    try:
        await live.serve(start_ms, duration_ms, offline)
    finally:
        await fleet.close()
