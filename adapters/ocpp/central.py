"""OCPP 1.6J central system: the thin async edge between charge points' WebSockets and the hub's pipeline.

Chargers connect to `ws://{hub}/ocpp/{site}/{charge_point_id}` with subprotocol `ocpp1.6` and HTTP Basic auth
(security profile 1: the charge point id and the password `smarthub device add SITE charger ID` gave). Each
request is mapped (`mapping`, pure) to contract messages, which `Hub.ingest` runs through the same pipeline as
MQTT and commits; only then is the charger answered, so an answered message is as durable as an acknowledged
MQTT one. The hub never sends a CALL from inside a handler (the library serves one message at a time).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from ocpp.exceptions import InternalError, NotSupportedError, OCPPError
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.messages import CallError, unpack
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    ChargingProfileStatus,
    DataTransferStatus,
    RegistrationStatus,
    RemoteStartStopStatus,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.responses import Response
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from adapters.ocpp import mapping
from adapters.ocpp.mapping import KIND, Electrics, Message, OpenSession
from hub import topics
from hub.adapters import IngestHeld, basic_auth
from hub.ingest.decode import Rejected
from hub.storage.base import EventQuery, StorageError

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)
wire_log = logging.getLogger(f"{__name__}.wire")
"""The library logs every frame at INFO; thousands of chargers would fill the hub's log, so only its warnings
show unless this logger is turned up."""
wire_log.setLevel(logging.WARNING)

SUBPROTOCOL = "ocpp1.6"
PATH = "/ocpp/{site}/{charge_point_id}"
HEARTBEAT_MAX_S = 60
"""The interval BootNotification asks for, at most; never more than a third of the hub's offline window."""
RESPONSE_TIMEOUT_S = 30
RECALL_EVENTS = 200
"""How many of a charge point's latest session starts a StopTransaction of an unknown session looks through."""
TX_PROFILE_SETTLE_S = 5.0
TX_PROFILE_RETRY_S = 1.0
"""A TxProfile rejected this soon after its StartTransaction is sent again every TX_PROFILE_RETRY_S (within the
command's 10 s)."""
BOOT_SETTLE_S = 0.2
"""How long after a BootNotification the hub waits before its GetConfiguration, so the boot's answer goes first."""
CONFIGURED_WAIT_S = 5.0
"""How long a set_limit waits for a just-booted charger's configuration (its unit) before using the last known."""
COMPOSITE_S = 3600
"""The GetCompositeSchedule window read back after a set_limit (beyond any dead-man step)."""
ACTIONS = frozenset(action.value for action in Action)
SPELLED_1_6 = {"FormatViolation": "FormationViolation",
               "OccurrenceConstraintViolation": "OccurenceConstraintViolation"}

Key = tuple[str, str]
"""(site, charge point id)"""


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class _Socket:
    """A Starlette WebSocket as the `recv()`/`send()` connection the `ocpp` library drives."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def recv(self) -> str:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        if text is None:  # OCPP-J is text frames; a binary one is read as UTF-8 rather than dropped unseen
            return bytes(message.get("bytes") or b"").decode("utf-8", "replace")
        return str(text)

    async def send(self, message: str) -> None:
        await self.websocket.send_text(message)


class Central:
    """Every connected charge point of one hub, and what outlives a connection (open sessions, raised faults)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.connected: dict[Key, HubChargePoint] = {}
        self.sessions: dict[tuple[str, str, int], OpenSession] = {}
        """(site, cp, transaction id) -> its start, for the StopTransaction (lost at a restart: see mapping)."""
        self.faults: dict[Key, dict[int, str]] = {}
        self.electrics: dict[Key, Electrics] = {}
        """Each charge point's schedule unit and phases, as its configuration and meter values told."""
        self.schedule_mismatches = 0
        """Profiles a charger accepted but whose composite schedule then showed a higher limit (or none)."""
        self.started_at: dict[tuple[str, str, int], float] = {}
        """(site, cp, transaction id) -> monotonic time its StartTransaction was answered."""
        self._next_transaction = int(time.time()) - 1_600_000_000
        """Transaction ids go up from the seconds since 2020-09: unique across restarts while a hub starts fewer
        than one transaction a second on average, and an int32 until 2088."""

    def heartbeat_interval(self, key: Key) -> int:
        """What BootNotification asks for: a third of the charger's offline window (its registry entry's, else
        the hub's), at most HEARTBEAT_MAX_S, so two lost heartbeats do not yet make it offline."""
        window_s = self.hub.live.heartbeat_for(self.hub.registry.get((key[0], KIND, key[1])))
        return max(1, min(HEARTBEAT_MAX_S, int(window_s / 3)))

    def transaction_id(self) -> int:
        self._next_transaction += 1
        return self._next_transaction

    def ingest(self, key: Key, messages: Sequence[Message]) -> None:
        """Through the pipeline and committed (`Hub.ingest`); a refused message is dead-lettered like MQTT's."""
        site, cp_id = key
        root = self.hub.settings.root
        results = self.hub.ingest([(f"{root}/{site}/{KIND}/{cp_id}/{m.channel}", orjson.dumps(m.payload))
                                   for m in messages])
        for result in results:
            if isinstance(result, Rejected):
                log.warning("OCPP %s/%s: the hub refused a mapped message (%s): %s", site, cp_id, result.reason,
                            result.detail[:200])

    def open_sessions(self, key: Key) -> dict[int, OpenSession]:
        return {tx: s for (site, cp_id, tx), s in self.sessions.items() if (site, cp_id) == key}

    async def _set_profile(self, cp: HubChargePoint, key: Key, connector: int, profile: dict[str, Any]) -> Any:
        """SetChargingProfile, sent again while a TxProfile is rejected within TX_PROFILE_SETTLE_S of its
        StartTransaction: many chargers refuse one until their transaction is fully set up."""
        request = call.SetChargingProfile(connector_id=connector, cs_charging_profiles=profile)
        transaction = profile.get("transaction_id")
        while True:
            answer = await cp.call(request, suppress=False)
            started = self.started_at.get((*key, transaction)) if transaction is not None else None
            if (answer.status != ChargingProfileStatus.rejected or started is None
                    or time.monotonic() - started > TX_PROFILE_SETTLE_S):
                return answer
            await asyncio.sleep(TX_PROFILE_RETRY_S)

    async def recall_session(self, key: Key, transaction_id: int) -> OpenSession | None:
        """The start of a session this hub did not see begin (it restarted since), from the stored
        session_start events; None when the store has none or is away."""
        query = EventQuery(site=key[0], kind=KIND, device=key[1], type="session_start", limit=RECALL_EVENTS)
        try:
            rows = await self.hub.storage.query_events(query)
        except StorageError as exc:
            log.warning("OCPP %s/%s: the store cannot say when session %s began: %s", *key, transaction_id, exc)
            return None
        for row in rows:
            if str(row.get("session")) == str(transaction_id):
                return mapping.session_from_event(row)
        return None

    def carries(self, site: str, kind: str, device: str) -> bool:
        """The hub's commands for a connected charge point come here (hub/commands.py `Carrier`)."""
        return kind == KIND and (site, device) in self.connected

    async def read_configuration(self, cp: HubChargePoint) -> None:
        """After a boot, the charger's schedule unit and phase rotation (GetConfiguration): scheduled from the
        BootNotification handler, never awaited in it (the answer comes through the same receive loop)."""
        await asyncio.sleep(BOOT_SETTLE_S)
        try:
            answer = await cp.call(call.GetConfiguration(key=list(mapping.CONFIG_KEYS)), suppress=False)
        except Exception as exc:  # noqa: BLE001 - a CallError, a timeout, the socket gone: W and 3 phases stay
            log.warning("OCPP %s/%s: its configuration could not be read (%s); limits go in %s",
                        *cp.key, exc, self.electrics.get(cp.key, Electrics()).unit)
            return
        known = self.electrics.get(cp.key, Electrics())
        self.electrics[cp.key] = mapping.configured({"configuration_key": answer.configuration_key}, known)

    async def _verify(self, cp: HubChargePoint, connector: int, profile: dict[str, Any],
                      electrics: Electrics) -> tuple[str | None, bool]:
        """(mismatch, verified): the composite schedule read back from the charger against what it accepted."""
        request = call.GetCompositeSchedule(connector_id=connector, duration=COMPOSITE_S,
                                            charging_rate_unit=electrics.unit)
        try:
            answer = await cp.call(request, suppress=False)
        except OCPPError as exc:  # a charger without GetCompositeSchedule: the profile stands unverified
            log.info("OCPP %s/%s: no composite schedule to verify with (%s)", *cp.key, exc.code)
            return None, False
        why = mapping.schedule_mismatch(asdict(answer), mapping.first_limit(profile), electrics.unit)
        return (f"connector {connector}: {why}" if why else None), True

    async def send(self, site: str, kind: str, device: str, op: str, args: dict[str, Any],
                   command_id: str) -> dict[str, Any]:
        """`set_limit` -> SetChargingProfile (read back with GetCompositeSchedule), `stop_session` ->
        RemoteStopTransaction, the operators' ops -> their OCPP calls; the charger's answer as the contract's
        reply. Sent from the API's task, never from inside a handler (the library serves one message at a
        time, so a CALL awaited in a handler would wait for itself), one CALL at a time (its lock)."""
        key = (site, device)
        cp = self.connected.get(key)
        if cp is None:
            return {"id": command_id, "ok": False, "error": "the charge point is not connected"}
        async with cp.commanding:
            return await self._send(cp, key, op, args, command_id)

    async def _send(self, cp: HubChargePoint, key: Key, op: str, args: dict[str, Any],
                    command_id: str) -> dict[str, Any]:
        sessions = self.open_sessions(key)
        try:
            if op == "set_limit":
                return await self._set_limit(cp, key, args, sessions, command_id)
            if op == "stop_session":
                target = mapping.stop_session(args.get("session"), sessions)
                if isinstance(target, str):
                    return {"id": command_id, "ok": False, "error": target}
                answer = await cp.call(call.RemoteStopTransaction(transaction_id=target), suppress=False)
                if answer.status != RemoteStartStopStatus.accepted:
                    return {"id": command_id, "ok": False, "error": f"RemoteStopTransaction: {answer.status}"}
                return {"id": command_id, "ok": True}
            if op in mapping.OPERATOR_OPS:
                action, payload = mapping.operator_request(op, args)
                answer = await cp.call(getattr(call, action)(**payload), suppress=False)
                reply = mapping.operator_reply(action, asdict(answer))
                if op == "change_configuration" and reply.ok:  # e.g. a new schedule unit: profiles follow it
                    entry = {"key": args["key"], "value": args["value"]}
                    self.electrics[key] = mapping.configured({"configuration_key": [entry]},
                                                             self.electrics.get(key, Electrics()))
                out: dict[str, Any] = {"id": command_id, "ok": reply.ok}
                if reply.error:
                    out["error"] = reply.error
                if reply.result is not None:
                    out["result"] = reply.result
                return out
        except OCPPError as exc:  # the charger answered with a CallError
            return {"id": command_id, "ok": False, "error": f"{exc.code}: {exc.description}"[:500]}
        return {"id": command_id, "ok": False, "error": f"{op} is not carried over OCPP yet"}

    async def _set_limit(self, cp: HubChargePoint, key: Key, args: dict[str, Any],
                         sessions: dict[int, OpenSession], command_id: str) -> dict[str, Any]:
        """The profiles in the charger's unit (once its configuration is read, if it just booted), each read
        back with GetCompositeSchedule when a session is open; a higher composite limit is a failed command."""
        if cp.configuring is not None and not cp.configuring.done():
            await asyncio.wait({cp.configuring}, timeout=CONFIGURED_WAIT_S)
        electrics = self.electrics.get(key, Electrics())
        requests = mapping.set_limit(args["limit_kw"], sessions, electrics, args.get("then_kw"), args.get("after_s"),
                                     _now_iso())
        limits = []
        for connector, profile in requests:
            answer = await self._set_profile(cp, key, connector, profile)
            if answer.status != ChargingProfileStatus.accepted:
                return {"id": command_id, "ok": False, "error": f"SetChargingProfile: {answer.status}"}
            limit_kw = mapping.rate_kw(mapping.first_limit(profile), electrics)
            limits.append(Message("telemetry", {"connector": connector, "limit_kw": limit_kw}))
        self.ingest(key, limits)  # the wall shows the cap the charger took
        verified = True
        for connector, profile in requests:
            if connector == 0:  # a default profile binds no session yet: nothing to read back
                continue
            mismatch, checked = await self._verify(cp, connector, profile, electrics)
            verified = verified and checked
            if mismatch:
                self.schedule_mismatches += 1
                log.warning("OCPP %s/%s accepted a profile it does not schedule: %s", *key, mismatch)
                return {"id": command_id, "ok": False, "error": f"GetCompositeSchedule: {mismatch}"}
        result = {"unit": electrics.unit, "phases": electrics.phases, "verified": verified and bool(sessions)}
        return {"id": command_id, "ok": True, "result": result}

    def open_faults(self, key: Key) -> list[str]:
        state = self.hub.live.devices.get((key[0], KIND, key[1]))
        return list(state.open_faults) if state is not None else []

    async def endpoint(self, websocket: WebSocket) -> None:
        site = websocket.path_params["site"]
        cp_id = websocket.path_params["charge_point_id"]
        if SUBPROTOCOL not in websocket.scope.get("subprotocols", ()):
            await _refuse(websocket, 400, f"subprotocol {SUBPROTOCOL} is required")
            return
        if not topics.SITE_RE.fullmatch(site) or not topics.DEVICE_RE.fullmatch(cp_id):
            await _refuse(websocket, 404, "no such charge point")
            return
        login = basic_auth(websocket.headers.get("authorization", ""))
        if login is None or login[0] != cp_id or not self.hub.credentials.check(site, KIND, cp_id, login[1]):
            log.warning("OCPP %s/%s refused: bad or missing Basic auth", site, cp_id)
            await _refuse(websocket, 401, "the charge point id and its password are required")
            return
        await websocket.accept(subprotocol=SUBPROTOCOL)
        self.hub.commands.carry(self)
        key = (site, cp_id)
        previous = self.connected.get(key)
        cp = HubChargePoint(cp_id, _Socket(websocket), self, key)
        self.connected[key] = cp
        if previous is not None:  # a reconnect while the old socket lingers: the new one is the charger now
            await previous.close()
        log.info("OCPP %s/%s connected", site, cp_id)
        try:
            self._state(key, mapping.online())
            await cp.start()
        except WebSocketDisconnect:
            pass
        finally:
            if self.connected.get(key) is cp:
                del self.connected[key]
                log.info("OCPP %s/%s disconnected", site, cp_id)
                self._state(key, mapping.offline())

    def _state(self, key: Key, message: Message) -> None:
        """Online or offline as the socket opens or closes: nobody to answer, so a hub that cannot take it now
        logs it rather than dropping the connection (at the outbox cap the state is not kept; the heartbeat
        window still tells a silent charger offline)."""
        try:
            self.ingest(key, [message])
        except IngestHeld as exc:
            log.warning("OCPP %s/%s: its %s state is not kept: %s", *key, message.payload, exc)
        except Exception:  # noqa: BLE001 - the outbox cannot commit now: the state stays pending there
            log.exception("OCPP %s/%s: its state could not be committed yet", *key)


async def _refuse(websocket: WebSocket, status: int, why: str) -> None:
    """Refuse the handshake with an HTTP status where the server can send one (else a plain 403)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        headers = {"WWW-Authenticate": 'Basic realm="ocpp"'} if status == 401 else None
        await websocket.send_denial_response(Response(why, status_code=status, headers=headers))
    else:
        await websocket.close(code=1008, reason=why)


class HubChargePoint(ChargePoint):
    """One connected charge point: each handler maps, ingests (committed), then answers."""

    def __init__(self, cp_id: str, connection: _Socket, central: Central, key: Key) -> None:
        super().__init__(cp_id, connection, response_timeout=RESPONSE_TIMEOUT_S, logger=wire_log)
        self.central = central
        self.key = key
        self.socket = connection
        self.configuring: asyncio.Task[None] | None = None
        """The GetConfiguration a boot scheduled, while it runs."""
        self.commanding = asyncio.Lock()
        """One hub command at a time (the library's lock is per CALL): a set_limit's profiles and their
        read-back are not interleaved with another's."""

    async def close(self) -> None:
        try:
            await self.socket.websocket.close(code=1000, reason="replaced by a newer connection")
        except RuntimeError:  # already closed
            pass

    async def route_message(self, raw_msg: str) -> None:
        """A frame that is no OCPP message gets a CallError when it carries a CALL's unique id (the library only
        logs it, and the charger would wait for its timeout); the connection stays up either way."""
        try:
            unpack(raw_msg)
        except OCPPError as error:
            unique_id = _call_id(raw_msg)
            log.warning("OCPP %s/%s sent a malformed message (%s)%s", *self.key, error.code,
                        "" if unique_id else ", not answerable")
            if unique_id is not None:
                await self._send(CallError(unique_id, error.code, error.description, error.details).to_json())
            return
        await super().route_message(raw_msg)

    async def _send(self, message: str) -> None:
        """CallErrors with OCPP 1.6's own error codes: the library answers a bad payload with 2.0.1's
        `FormatViolation` (1.6 says `FormationViolation`) and may spell `OccurrenceConstraintViolation` the 2.1
        way (1.6 keeps its typo `Occurence...`); a 1.6 charger matches on these strings."""
        if message.startswith("[4"):
            frame = orjson.loads(message)
            if len(frame) > 2 and frame[2] in SPELLED_1_6:
                frame[2] = SPELLED_1_6[frame[2]]
                message = orjson.dumps(frame).decode()
        await super()._send(message)

    async def _handle_call(self, msg: Any) -> Any:
        """OCPP-J's CallErrors as the spec words them (the library has the two the other way round): an action
        OCPP 1.6 does not know is NotImplemented ("not known by receiver"); one it knows that the central
        system does not serve is NotSupported ("recognized but not supported")."""
        if msg.action not in self.route_map:
            if msg.action in ACTIONS:
                raise NotSupportedError(details={"cause": f"{msg.action} is not served by this central system"})
            raise OcppNotImplemented(details={"cause": f"{msg.action} is not an OCPP 1.6 action"})
        return await super()._handle_call(msg)

    def _ingest(self, messages: Sequence[Message]) -> None:
        """Committed, or a CallError: OCPP chargers send transaction messages again until answered."""
        try:
            self.central.ingest(self.key, messages)
        except IngestHeld as exc:
            raise InternalError(description=f"the central system cannot store now; send again later ({exc})"
                                ) from None

    @on(Action.boot_notification)
    def on_boot_notification(self, **p: Any) -> call_result.BootNotification:
        self._ingest(mapping.boot_notification(p))
        if self.configuring is None or self.configuring.done():  # sent after this answer, not awaited here
            self.configuring = asyncio.get_running_loop().create_task(self.central.read_configuration(self))
        return call_result.BootNotification(current_time=_now_iso(), interval=self.central.heartbeat_interval(self.key),
                                            status=RegistrationStatus.accepted)

    @on(Action.heartbeat)
    def on_heartbeat(self, **p: Any) -> call_result.Heartbeat:
        self._ingest(mapping.heartbeat())
        return call_result.Heartbeat(current_time=_now_iso())

    @on(Action.status_notification)
    def on_status_notification(self, **p: Any) -> call_result.StatusNotification:
        raised = self.central.faults.get(self.key, {})
        messages, after = mapping.status_notification(p, raised, self.central.open_faults(self.key))
        self._ingest(messages)
        self.central.faults[self.key] = after
        return call_result.StatusNotification()

    @on(Action.meter_values)
    def on_meter_values(self, **p: Any) -> call_result.MeterValues:
        messages = mapping.meter_values(p)
        phases = mapping.phases_seen(p)
        if phases is not None:
            known = self.central.electrics.get(self.key, Electrics())
            if known.phases != phases:
                self.central.electrics[self.key] = Electrics(known.unit, phases, known.voltage_v)
        if messages:
            self._ingest(messages)
        return call_result.MeterValues()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **p: Any) -> call_result.Authorize:
        """Every tag is accepted for now: the hub keeps no list of residents' tags yet (issue 13 leaves who may
        charge to the operator's system)."""
        return call_result.Authorize(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.start_transaction)
    def on_start_transaction(self, **p: Any) -> call_result.StartTransaction:
        transaction_id = self.central.transaction_id()
        messages, session = mapping.start_transaction(p, transaction_id)
        self._ingest(messages)
        self.central.sessions[(*self.key, transaction_id)] = session
        self.central.started_at[(*self.key, transaction_id)] = time.monotonic()
        return call_result.StartTransaction(transaction_id=transaction_id,
                                            id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.stop_transaction)
    async def on_stop_transaction(self, **p: Any) -> call_result.StopTransaction:
        started = self.central.sessions.get((*self.key, p["transaction_id"]))
        if started is None:  # the hub restarted during the session: its start is in the store
            started = await self.central.recall_session(self.key, p["transaction_id"])
        if started is None:
            log.warning("OCPP %s/%s: StopTransaction %s of a session neither this hub nor its store saw start; "
                        "its energy and duration come from its transactionData or count 0", *self.key,
                        p["transaction_id"])
        self._ingest(mapping.stop_transaction(p, started))
        self.central.sessions.pop((*self.key, p["transaction_id"]), None)
        self.central.started_at.pop((*self.key, p["transaction_id"]), None)
        info = {"status": AuthorizationStatus.accepted} if p.get("id_tag") else None
        return call_result.StopTransaction(id_tag_info=info)

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **p: Any) -> call_result.DataTransfer:
        """Answered, never refused with an error: this central system knows no vendor extensions."""
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status(self, **p: Any) -> call_result.DiagnosticsStatusNotification:
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, **p: Any) -> call_result.FirmwareStatusNotification:
        return call_result.FirmwareStatusNotification()


def _call_id(raw: str) -> str | None:
    """The unique id of what looks like a CALL (`[2, "id", ...]`), if one can be read."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(message, list) and len(message) >= 2 and message[0] == 2 and isinstance(message[1], str):
        return message[1][:36]
    return None


class OcppCollector(Collector):
    """`/metrics` for the central systems of one hub: charge points connected, composite-schedule mismatches."""

    def __init__(self) -> None:
        self.centrals: list[Central] = []

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("smarthub_ocpp_connected", "OCPP charge points connected now",
                                value=sum(len(c.connected) for c in self.centrals))
        yield CounterMetricFamily("smarthub_ocpp_schedule_mismatches", "Charging profiles a charger accepted but "
                                  "its composite schedule did not show", value=sum(c.schedule_mismatches
                                                                                   for c in self.centrals))


class OcppAdapter:
    """The hub's adapter seam (hub/adapters.py): one WebSocket route and its `Central` per app served (one in
    production; the Central lives as long as the app's route does, so nothing here outlives a hub)."""

    name = "ocpp"

    def __init__(self) -> None:
        self.collectors: weakref.WeakKeyDictionary[CollectorRegistry, OcppCollector] = weakref.WeakKeyDictionary()

    def routes(self, hub: Hub) -> Sequence[BaseRoute]:
        central = Central(hub)
        registry = getattr(hub, "metrics", None)  # none on the stand-in hub an OpenAPI document is built with
        if registry is not None:
            collector = self.collectors.get(registry)
            if collector is None:  # one collector a hub, however many apps it serves
                collector = self.collectors[registry] = OcppCollector()
                registry.register(collector)
            collector.centrals.append(central)
        return [WebSocketRoute(PATH, central.endpoint)]
