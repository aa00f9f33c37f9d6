"""The Hub: builds every component from Settings and runs them for as long as it lives.

Start order matters and so does stop order: on the way out the hub stops
listening to MQTT first, then flushes what it holds into the outbox, then gives
the writer a few seconds to drain the outbox into the store. Whatever is left
stays on disk and is written at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import signal
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from devices import REGISTRY
from devices.base import Accepted, DeviceKind
from hub import adapters, control, topics
from hub.adapters import IngestHeld, MqttAdapter, MqttHandler
from hub.alerts.desk import OrderDesk
from hub.alerts.engine import AlertEngine
from hub.alerts.notify import Notifier
from hub.alerts.store import AlertStore, OrderStore
from hub.audit import AuditLog
from hub.bus import LiveBus
from hub.commands import Commands
from hub.config import Settings
from hub.credentials import Credentials
from hub.deadletter import DeadLetters
from hub.events import AlertChanged, Events, IncidentChanged, OrderChanged, PointsRejected
from hub.health import HealthWatch
from hub.incidents.chain import ChainStore
from hub.incidents.desk import IncidentDesk
from hub.incidents.evidence import evidence_of
from hub.incidents.export import Exporter, Limits, origins
from hub.incidents.merge import Incident
from hub.incidents.retention import forget_personal, personal_of
from hub.incidents.store import IncidentStore
from hub.incidents.work import IncidentWork
from hub.ingest.decode import Rejected
from hub.ingest.pipeline import Pipeline
from hub.inside import InsideTracker
from hub.metrics import HubCollector
from hub.mqtt import MqttLink, RawMessage
from hub.registry import Registry
from hub.screencache import ScreenCache
from hub.settled import Settled
from hub.state import LiveState
from hub.storage.base import Storage, StorageError
from hub.storage.outbox import Outbox, Writer
from hub.supervisor import Supervisor
from hub.tally import TodayTally
from hub.users import Users

log = logging.getLogger(__name__)

SLOW_FIGURES_S = 60.0
"""Figures that move slowly and cost the store a scan (today's water and electricity use) are this old at most."""

SHUTDOWN_DRAIN_S = 10.0
TASK_STOP_S = 3.0
"""How long each background task may take to end once cancelled, at stop."""
HTTP_STOP_S = 5.0
"""How long open requests and WebSockets may take to close, at stop."""
HEARTBEAT_CHECK_S = 10
OUTBOX_RESUME_FILL = 0.95
ACCOUNTS_CHECK_S = 1.0
"""How often the hub looks for device accounts added by `smarthub device add` while it runs."""
VENDOR_ROUTES_MAX = 10_000
"""Vendor topics whose adapter is remembered (per camera a few topics: far below this)."""
PRIVACY_EVERY_S = 3600.0
"""How often silent devices are looked for (an offline alert is at most this late)."""


def make_storage(settings: Settings) -> Storage:
    """InfluxDB when `SMARTHUB_INFLUX_URL` is set, else the embedded store under the data dir."""
    if settings.influx_url:
        from hub.storage.influx import InfluxStorage

        return InfluxStorage(settings.influx_url, settings.influx_db, settings.influx_token, org=settings.influx_org)
    from hub.storage.embedded import EmbeddedStorage

    return EmbeddedStorage(settings.data_dir / "store.db", retention_days=settings.retention_days)


class Hub:
    """One running hub. Use as `async with Hub(settings) as hub:`."""

    def __init__(self, settings: Settings, kinds: Mapping[str, DeviceKind] = REGISTRY) -> None:
        self.settings = settings
        self.kinds = kinds
        self.started_at = time.time()
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Hub:
        s = self.settings
        self.admin_token = s.admin_token or secrets.token_urlsafe(24)
        if not s.admin_token:
            log.warning("SMARTHUB_ADMIN_TOKEN is not set; this run's admin token is %s", self.admin_token)
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.registry = Registry.load(s.registry, set(self.kinds))
        # `smarthub device add`, from any process, even while running
        self.credentials = Credentials(s.data_dir, s.database_url)
        self._stack.push_async_callback(_step, "closing the device accounts", self.credentials.close)
        self._accounts_version = -1
        self.sync_device_accounts()
        self.live = LiveState(s.heartbeat_s)
        self.dead_letters = DeadLetters(s.data_dir / "deadletter.db", max_bytes=int(s.deadletter_max_mb * 2**20),
                                        database_url=s.database_url)
        self.storage = make_storage(s)
        self.outbox = Outbox(s.data_dir / "outbox.db", wire=self.storage, max_bytes=int(s.outbox_max_mb * 2**20))
        self.events = Events()
        self.pipeline = Pipeline(s.root, self.kinds, self.registry, self.live, self.outbox, self.dead_letters,
                                 self.events)
        self.writer = Writer(self.outbox, self.storage, self.events.emit)
        self._contract_prefix = s.root + "/"
        self._vendor: list[tuple[str, MqttHandler]] = [
            (f, adapter.mqtt_handler(self)) for adapter in adapters.load(s.adapter_modules)
            if isinstance(adapter, MqttAdapter) for f in adapter.mqtt_filters()]
        """(filter, handler) of the vendor topics adapters consume on this connection, first match wins."""
        self._vendor_routes: dict[str, MqttHandler | None] = {}
        vendor_filters = list(dict.fromkeys(f for f, _ in self._vendor))
        if s.mqtt_share_group:
            vendor_filters = [f"$share/{s.mqtt_share_group}/{f}" for f in vendor_filters]
        self.mqtt = MqttLink(
            s.mqtt,
            s.mqtt_client_id,
            topics.subscriptions(s.root, s.mqtt_share_group) + vendor_filters,
            self._on_batch,
            commit=self.pipeline.flush,
            protocol=s.mqtt_protocol,
            hold_reason=self._backpressure,
        )
        self.users = Users(s.data_dir, self.admin_token, s.database_url)
        self._stack.push_async_callback(_step, "closing the users", self.users.close)
        self.audit = AuditLog(s.data_dir / "audit.db", s.database_url)
        self.commands = Commands(s.root, self._publish)
        self.alert_store = AlertStore(s.data_dir / "alerts.db", s.database_url)
        self.notifier = Notifier(s.root, self._publish, s.webhook_urls, s.escalation_webhook_urls,
                                 incident_webhooks=s.incident_webhook_urls)
        self.bus = LiveBus(self.live, self.registry)
        emit = self.events.emit
        self.alerts = AlertEngine(self.kinds, self.alert_store, self.live, self.registry,
                                  lambda alert: emit(AlertChanged(alert)),
                                  settings=s.kind_settings(self.kinds), escalate_after_s=s.escalate_after_s)
        self.order_store = OrderStore(self.alert_store)
        self.desk = OrderDesk(self.order_store, self.alerts, lambda order: emit(OrderChanged(order)),
                              sla=s.sla)
        # Incidents are not on the state seam yet (hub/statedb.py): with PostgreSQL they stay in the local file.
        incidents_file = AlertStore(s.data_dir / "alerts.db") if s.database_url else self.alert_store
        self.incident_store = IncidentStore(incidents_file)
        self.incidents = IncidentDesk(self.incident_store, self.registry, lambda i: emit(IncidentChanged(i)),
                                      window_s=s.incident_window_s)
        self.incident_work = IncidentWork(self.incidents, self.alerts, self.desk)
        evidence = self._evidence
        # every saved version of an incident, hash-chained, personal values as salted digests
        self.chain = ChainStore(incidents_file, evidence, personal=personal_of(self.kinds))
        media_from = adapters.media_origins(adapters.load(s.adapter_modules)) | origins(
            s.evidence_media_origins.split(","))
        self.exporter = Exporter(self.chain, self.audit, evidence, s.data_dir / "exports", media_from,
                                 s.personal_retention_days * 86_400,
                                 Limits(s.evidence_media_max_mb, s.evidence_export_max_mb, s.evidence_fetch_timeout_s,
                                        s.evidence_fetch_total_s))
        self.inside = InsideTracker(int(s.inside_days * 86_400_000), self.kinds)
        self.screen_cache = ScreenCache(s.screen_cache_s)
        self.slow_figures = ScreenCache(SLOW_FIGURES_S)  # today's use: a scan of every register's readings
        self.settled = Settled()  # screens re-read only the recent part of today's counts and the charging curve
        self.health = HealthWatch(self)
        self.events.on(PointsRejected, "dead-letters", self.dead_letters.keep_refused)
        # Each receiver on its own: a notifier that raises still lets the screens and the desk hear the alert.
        self.events.on(AlertChanged, "notifier", lambda e: self.notifier(e.alert))
        self.events.on(AlertChanged, "live-bus", lambda e: self.bus.on_alert(e.alert))
        # The incident first: the work order a new alert opens (the next handler) then finds it to join.
        self.events.on(AlertChanged, "incidents", lambda e: self.incidents.on_alert(e.alert))
        self.events.on(AlertChanged, "work-orders", lambda e: self.desk.on_alert(e.alert))
        self.events.on(OrderChanged, "live-bus", lambda e: self.bus.on_order(e.order))
        self.events.on(OrderChanged, "incidents", lambda e: self.incidents.on_order(e.order))
        self.events.on(IncidentChanged, "live-bus", lambda e: self.bus.on_incident(e.incident))
        self.events.on(IncidentChanged, "notifier", lambda e: self.notifier.incident(e.incident))
        self.events.on(IncidentChanged, "evidence-chain", lambda e: self.chain.follow(e.incident))
        on_message = self.events.on_message
        on_message("alert-engine", self.alerts.on_message)
        on_message("live-bus", self.bus.on_message)
        on_message("incidents", self.incidents.on_message)
        on_message("command-replies", self.commands.on_message)
        on_message("vehicles-inside", self.inside.on_message)
        self.tally = TodayTally(self.kinds, int(time.time() * 1000)) if s.today_tally else None
        if self.tally is not None:
            on_message("today-tally", self.tally.on_message)
        self.controllers = control.make(self.kinds)
        kind_settings = s.kind_settings(self.kinds)
        self._control_contexts = {
            c.name: control.ControlContext(kind, self.live, self.registry, kind_settings[kind], self.commands,
                                           self.audit, self.alerts, control.wall_ms)
            for kind, c in self.controllers}
        for _, controller in self.controllers:
            if callable(getattr(controller, "on_message", None)):
                on_message(f"control-{controller.name}", controller.on_message)  # type: ignore[attr-defined]
        self.metrics = CollectorRegistry(auto_describe=False)
        self.metrics.register(HubCollector(self))

        self._stack.push_async_callback(_step, "closing the dead letters", self.dead_letters.close)
        self._stack.push_async_callback(_step, "closing the alert store", self.alert_store.close)
        self._stack.push_async_callback(_step, "closing the audit log", self.audit.close)
        self._stack.push_async_callback(_step, "closing the outbox", self.outbox.close)
        await self.storage.start()
        self._stack.push_async_callback(_step, "closing the store", self.storage.close)
        self._stack.push_async_callback(_step, "draining the outbox", self._drain_outbox)
        self.supervisor = Supervisor()
        start = self.supervisor.start
        start("outbox-writer", self.writer.run)
        start("alert-notifier", self.notifier.run)
        start("live-bus", self.bus.run)
        start("heartbeats", self._heartbeat_loop)
        start("device-accounts", self._accounts_loop)
        start("personal-data-retention", self._privacy_loop)
        start("vehicles-inside", lambda: self.inside.rebuild(self.storage), once=True)
        start("health-watch", self.health.run)
        for _, controller in self.controllers:
            ctx = self._control_contexts[controller.name]
            start(f"control-{controller.name}", lambda c=controller, ctx=ctx: c.run(ctx))  # type: ignore[misc]
        start("mqtt-link", self.mqtt.run)  # last started, first stopped: nothing new arrives while the rest stops
        self._stack.push_async_callback(_step, "stopping the tasks", self._stop_tasks)
        log.info("hub started: root=%s store=%s outbox=%d points waiting", s.root, self.storage.name, self.outbox.depth)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._stack.aclose()

    def _evidence(self, incident: Incident) -> dict[str, Any] | None:
        """An incident's evidence by the registry as it is now (floor calibration, names)."""
        return evidence_of(incident, self.registry.get)

    def _on_batch(self, batch: list[RawMessage], received_ms: int) -> None:
        handle = self.pipeline.handle
        prefix = self._contract_prefix
        for topic, payload, retain, packet_id, dup in batch:
            if topic.startswith(prefix) or not self._vendor:
                handle(topic, payload, received_ms, retain, packet_id, dup)
            else:
                self._on_vendor(topic, payload, received_ms, retain, packet_id, dup)

    def _on_vendor(self, topic: str, payload: bytes, received_ms: int, retain: bool, packet_id: int,
                   dup: bool) -> None:
        """A vendor topic an adapter consumes: its handler maps it, the pipeline takes what it gives. Nothing is
        committed here: the MQTT edge commits the batch (dead letters included) before acknowledging it."""
        pipeline = self.pipeline
        route = self._vendor_route(topic)
        if route is None:  # no adapter's filter: the contract's own checks name the topic's fault
            pipeline.handle(topic, payload, received_ms, retain, packet_id, dup)
            return
        if packet_id and pipeline.redelivered(topic, packet_id, payload, dup):
            return
        try:
            results = list(route(topic, payload, retain, received_ms))
        except Exception as exc:  # noqa: BLE001 - an adapter's bug dead-letters the message, ingest goes on
            # logged by the rejection's rate-limited log: a bug that fails every message must not flood it
            results = [Rejected.of(topic, "adapter_failed", repr(exc), payload, received_ms)]
        for result in results:
            if isinstance(result, Rejected):
                pipeline.reject(result)
            else:
                pipeline.handle(result[0], result[1], received_ms, retain)

    def _vendor_route(self, topic: str) -> MqttHandler | None:
        routes = self._vendor_routes
        if topic in routes:
            return routes[topic]
        route = next((h for f, h in self._vendor if topics.matches(f, topic)), None)
        if len(routes) < VENDOR_ROUTES_MAX:
            routes[topic] = route
        return route

    def ingest(self, messages: list[tuple[str, bytes]], received_ms: int | None = None
               ) -> list[Accepted | Rejected | None]:
        """What an adapter received, through the pipeline and committed: when this returns, the messages are as
        durable as an acknowledged MQTT message, so the adapter may answer its device. Raises if the outbox
        cannot commit (then nothing may be answered, and the next flush tries again), and `IngestHeld` at the
        outbox cap, where MQTT stops reading: the adapter refuses its device so that it sends again later."""
        held = self._backpressure()
        if held is not None:
            raise IngestHeld(held)
        now = received_ms if received_ms is not None else int(time.time() * 1000)
        results = [self.pipeline.handle(topic, raw, now) for topic, raw in messages]
        self.pipeline.flush()
        return results

    def _backpressure(self) -> str | None:
        """Stop reading MQTT at the outbox cap, and start again below 95% of it (no flapping at the edge)."""
        if self.outbox.fill < (OUTBOX_RESUME_FILL if self.mqtt.held else 1.0):
            return None
        return f"the outbox is at its cap ({self.settings.outbox_max_mb:g} MiB) while the store is away"

    async def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        await self.mqtt.publish(topic, payload, qos=qos, retain=retain)

    async def _heartbeat_loop(self) -> None:
        """Derived alerts whose condition lasted, every second; silent devices every HEARTBEAT_CHECK_S."""
        ticks = 0
        while True:
            await asyncio.sleep(1.0)
            self.pipeline.report_rejections()  # a flood of bad messages that stopped still gets its count logged
            self.events.report()  # so does a handler that failed on every message of a burst
            self.alerts.check_deadlines()
            self.alerts.check_escalations()
            ticks += 1
            if ticks % HEARTBEAT_CHECK_S == 0:
                self.alerts.check_heartbeats()
                self.desk.check_overdue()
                self.incidents.prune()

    def sync_device_accounts(self) -> bool:
        """Register the devices of accounts added since the last look (by this or another process).

        The store's change counter tells whether anything changed, so the look is one read when nothing did."""
        version = self.credentials.db.changed()
        if version == self._accounts_version:
            return False
        self._accounts_version = version
        for account in self.credentials.devices:
            self.registry.register(account.site, account.kind, account.device)
        return True

    async def _accounts_loop(self) -> None:
        while True:
            await asyncio.sleep(ACCOUNTS_CHECK_S)
            self.sync_device_accounts()

    async def forget_personal_data(self, now_ms: int | None = None) -> None:
        """Delete what holds plates, subjects and id tags once it is older than the retention setting (and drop
        them from incidents: `hub.incidents.retention`). `now_ms`: the clock, for tests."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        before_ms = now_ms - int(self.settings.personal_retention_days * 86_400_000)
        forget_personal(self.incidents, before_ms, personal_of(self.kinds), self.chain.unsalt)
        for kind in self.kinds.values():
            for event_type in kind.personal_event_types:
                await self.storage.delete_events(kind.name, event_type, before_ms)
        self.dead_letters.forget_before(before_ms)
        self.chain.forget_orphans()  # the hash chains of incidents that retention deleted

    async def _privacy_loop(self) -> None:
        while True:
            try:
                await self.forget_personal_data()
            except StorageError as exc:  # the store is away: try again next time
                log.warning("personal-data retention postponed: %s", exc)
            await asyncio.sleep(PRIVACY_EVERY_S)

    def http_server(self, host: str, port: int) -> uvicorn.Server:
        """The API and pages of this hub, served by uvicorn without its own signal handling."""
        from hub.api import create_app

        return _Server(uvicorn.Config(create_app(self), host=host, port=port, log_config=None, access_log=False,
                                       timeout_graceful_shutdown=HTTP_STOP_S))

    async def _stop_tasks(self) -> None:
        """Stop MQTT first (nothing new arrives), then the timers; then keep what was received.

        The supervisor's stop never raises, so the last flush always happens, even after a task died."""
        await self.supervisor.stop(TASK_STOP_S)
        self.pipeline.flush()

    async def _drain_outbox(self) -> None:
        if self.outbox.depth and not await self.writer.drain(SHUTDOWN_DRAIN_S):
            log.warning("%d points stay in the outbox and will be written at the next start", self.outbox.depth)


async def _step(what: str, action: Callable[[], object]) -> None:
    """One step of the stop: a failure is logged and the steps after it still run (flush, drain, close)."""
    try:
        result = action()
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("%s failed while stopping; going on with the rest of the stop", what)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the hub decides how to stop."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


async def serve(settings: Settings) -> None:
    """`smarthub run`: the hub plus its HTTP API until SIGINT or SIGTERM, then a clean stop.

    The signal handlers are in place before the hub starts, so a signal during a slow start (a store that
    does not answer) still ends in the clean stop rather than the default kill."""
    host, port = settings.http_host_port
    stopping = asyncio.Event()
    server: uvicorn.Server | None = None

    def on_signal() -> None:
        stopping.set()
        if server is not None:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    async with Hub(settings) as hub:
        server = hub.http_server(host, port)
        if not stopping.is_set():
            log.info("API and dashboard on http://%s:%d/ (OpenAPI at /docs)", host, port)
            await server.serve()
        log.info("stopping: flushing what the hub holds")
    log.info("stopped")
