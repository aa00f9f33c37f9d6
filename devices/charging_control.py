"""The orderly-charging controller: runs `devices.charging.allocate` per site and sends chargers their limits.

Per site with chargers and a declared capacity (registry: `power_cap_kw`, or `transformer_kva` with
`power_factor` and `margin_pct`), on every change of one of its chargers (debounced) and at least every
`charging_period_s`: the base load is the power of the site's electricity meters whose registry `role` is
`transformer` (else the site's configured `base_load_kw`), each charger is one allocator connector (its
registry `max_current_a`, `phases`, `priority`; its limit sent as `set_limit` in kW, which an OCPP charge point's
adapter turns into a TxProfile), a car is present while a session is open or its status says so. A limit is
sent when it fell, rose by more than `RESEND_KW` or is `charging_renew_s` old; cuts go out before raises, so the
limits sent never add up above the headroom on the way. A charger that drops off keeps its last limit out of
the headroom for the dead-man window (it may still be charging) and is sent its limit anew when back.
Two derived alerts: the chargers drawing above the headroom for `charging_over_cap_s` (a charger not obeying),
a car paused past the allocator's starvation bound. A resident's plan for the open session (energy wanted,
planned departure, deferrable to the off-peak hours; `PUT /api/charging/{site}/{charger}/plan`) gives the
allocator its urgency and its deferrable sessions; it is kept with that session and goes when the session ends.

The decisions are pure functions (`site_inputs`, `reserve`, `to_send`, `over_cap`, `starved`, `view`);
`ChargingControl` is their thin async edge. Nothing here names a person: session ids stay, `id_tag` is never kept.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from devices.base import Accepted
from devices.charging import (
    DEADMAN_AFTER_S,
    Allocation,
    Connector,
    Limit,
    Session,
    Site,
    Window,
    allocate,
    deadman_schedule,
)

if TYPE_CHECKING:
    from hub.control import ControlContext

log = logging.getLogger(__name__)

KIND = "charger"
METER = "meter"
TRANSFORMER_ROLE = "transformer"
OCCUPIED = frozenset({"preparing", "charging", "suspended_ev", "suspended_evse"})
"""Statuses (OCPP ChargePointStatus) that mean a car is plugged in."""
RESEND_KW = 0.1
"""A limit that moved by no more than this is not sent again (until it is due for renewal)."""
OVER_CAP_TOLERANCE_KW = 0.2
"""Meters are not exact: a draw this little above the headroom is not a charger disobeying."""
OVER_CAP = "charging_over_cap"
PAUSED_LONG = "charging_paused_long"
DEFAULT_MAX_A = 32.0


@dataclass(frozen=True, slots=True)
class Plan:
    """A resident's plan for one open session: the energy wanted in all (kWh), the planned departure (epoch
    ms), whether it may wait for the off-peak hours. None: not said."""

    session: str
    energy_kwh: float | None = None
    departure_ms: int | None = None
    deferrable: bool = False


@dataclass(slots=True)
class ChargerSeen:
    """What the controller knows of one charger: each connector's last telemetry, its open sessions."""

    connectors: dict[int, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """session id -> {connector, meter_start_kwh}"""
    plan: Plan | None = None
    """The resident's plan for its open session (cleared when that session ends)"""

    def fold(self, msg: Accepted) -> bool:
        """Take one message of this charger in; whether it may change the allocation."""
        payload = msg.payload
        if msg.channel == "telemetry":
            fields = msg.fields()
            self.connectors.setdefault(int(fields.get("connector", 1)), {}).update(fields)
            return True
        if msg.channel == "event":
            kind = payload.type  # type: ignore[attr-defined]
            if kind == "session_start":
                self.sessions[payload.session] = {"connector": payload.connector,  # type: ignore[attr-defined]
                                                  "meter_start_kwh": payload.meter_start_kwh}  # type: ignore[attr-defined]
                return True
            if kind == "session_stop":
                if self.plan is not None and self.plan.session == payload.session:  # type: ignore[attr-defined]
                    self.plan = None
                return self.sessions.pop(payload.session, None) is not None  # type: ignore[attr-defined]
        return msg.channel == "state"

    @property
    def power_kw(self) -> float:
        return sum(c.get("power_kw") or 0.0 for c in self.connectors.values())

    @property
    def session(self) -> str | None:
        """The open session the allocator steers (the first by id when a charger has several)."""
        return min(self.sessions) if self.sessions else None

    def delivered(self, session: str) -> float | None:
        """Energy of an open session so far (kWh), when its connector's meter is known."""
        s = self.sessions.get(session)
        meter = self.connectors.get(s["connector"], {}).get("energy_kwh") if s is not None else None
        return None if meter is None or s is None else round(max(0.0, meter - s["meter_start_kwh"]), 3)

    def current_plan(self) -> Plan | None:
        """The plan, while its session is the one steered."""
        return self.plan if self.plan is not None and self.plan.session == self.session else None

    def remaining_kwh(self) -> float | None:
        """What the plan still wants: its energy less what the session took so far (None: no energy said)."""
        plan = self.current_plan()
        if plan is None or plan.energy_kwh is None:
            return None
        return round(max(0.0, plan.energy_kwh - (self.delivered(plan.session) or 0.0)), 3)

    def session_input(self, device: str) -> Session:
        """The allocator's Session for the car here, with its plan when the resident gave one."""
        plan = self.current_plan()
        if plan is None:
            return Session(device, id=self.session or "plugged")
        return Session(device, id=plan.session, energy_kwh=self.remaining_kwh(), departure_ms=plan.departure_ms,
                       deferrable=plan.deferrable)

    @property
    def occupied(self) -> bool:
        return bool(self.sessions) or any(c.get("status") in OCCUPIED for c in self.connectors.values())

    def progress(self) -> dict[str, Any]:
        """The car's progress: its state of charge and the energy of its session so far, when known."""
        soc = [c["soc_pct"] for c in self.connectors.values() if c.get("soc_pct") is not None]
        delivered = None
        for s in self.sessions.values():
            meter = self.connectors.get(s["connector"], {}).get("energy_kwh")
            if meter is not None:
                delivered = round(max(0.0, meter - s["meter_start_kwh"]), 3)
        statuses = sorted({c["status"] for c in self.connectors.values() if c.get("status")})
        return {"soc_pct": max(soc) if soc else None, "session_kwh": delivered, "power_kw": round(self.power_kw, 3),
                "status": ",".join(statuses) or None}


@dataclass(frozen=True, slots=True)
class ChargerInput:
    """One charger as the allocator's inputs are built from: registry entry, what it said, online or not."""

    device: str
    online: bool
    seen: ChargerSeen
    max_current_a: float | None = None
    phases: int | None = None
    priority: int = 0


def site_inputs(config: Any, base_load_kw: float | None, chargers: Sequence[ChargerInput],
                starve_after_ms: int, reserved_kw: float = 0.0) -> tuple[Site, list[Connector], list[Session]]:
    """The allocator's inputs for one site: its registry entry, the measured base load (None: use the
    configured one), its chargers, and the power kept for offline chargers (`reserve`). An offline charger
    has no car the hub can steer: it is given nothing."""
    site = Site(transformer_kva=config.transformer_kva, power_factor=config.power_factor,
                margin_pct=config.margin_pct, power_cap_kw=config.power_cap_kw,
                base_load_kw=(config.base_load_kw if base_load_kw is None else base_load_kw) + reserved_kw,
                off_peak=tuple(Window(a, b) for a, b in config.off_peak), starve_after_ms=starve_after_ms)
    connectors = [Connector(c.device, max_current_a=c.max_current_a or DEFAULT_MAX_A,
                            phases=3 if c.phases == 3 else 1, rate_unit="W", priority=c.priority)
                  for c in sorted(chargers, key=lambda c: c.device)]
    sessions = [c.seen.session_input(c.device) for c in chargers if c.online and c.seen.occupied]
    return site, connectors, sessions


def reserve(sent: dict[str, tuple[float, int]], reserved: Mapping[str, tuple[float, int]], online: Iterable[str],
            now_ms: int, keep_ms: int) -> dict[str, tuple[float, int]]:
    """Power kept for chargers that went offline: one that drops off may still be charging at the limit it
    last acknowledged, so that limit stays out of the headroom for `keep_ms` (as long as an OCPP dead-man
    profile holds it) or until it is back. Moves such chargers out of `sent` (so a charger that returns is sent
    its limit anew); returns device -> (kW, since when)."""
    up = set(online)
    kept = {d: r for d, r in reserved.items() if d not in up and now_ms - r[1] < keep_ms}
    for device in [d for d in sent if d not in up]:
        kw, _ = sent.pop(device)
        if kw > 0:
            kept[device] = (kw, now_ms)
    return kept


def limit_kw(limit: Limit) -> float:
    """What `set_limit` carries: the limit in kW (the allocator rounded it down to 0.1)."""
    return round(limit.power_kw, 1)


def deadman_kw(limit: Limit, safe_share_kw: float, connector: Connector) -> float:
    """The cap `set_limit` falls to after `DEADMAN_AFTER_S` unless renewed (`deadman_schedule`), in kW: the lower
    of the limit and the safe share, 0 below the charger's minimum. Renewed every `charging_renew_s` (5 min), so
    chargers of a hub that died fall to shares that fit the headroom together."""
    later = deadman_schedule(limit, safe_share_kw, connector).periods[-1].limit
    kw = connector.kw(later) if limit.unit == "A" else later / 1000
    return min(limit_kw(limit), math.floor(kw * 10 + 1e-9) / 10)


def to_send(allocation: Allocation, sent: Mapping[str, tuple[float, int]], online: Iterable[str], now_ms: int,
            renew_ms: int) -> list[tuple[str, float]]:
    """(device, kW) to send now, cuts first: limits that fell, rose by more than RESEND_KW from what was last
    sent (or were never sent) or are due for renewal; only to online chargers. Every cut goes out, however small:
    a skipped one would leave limits adding up above the headroom (by up to RESEND_KW a charger)."""
    reachable = set(online)
    out = []
    for lim in allocation.limits:
        if lim.connector not in reachable:
            continue
        kw = limit_kw(lim)
        before = sent.get(lim.connector)
        if (before is None or kw < before[0] - 1e-9 or kw - before[0] > RESEND_KW + 1e-9
                or now_ms - before[1] >= renew_ms):
            out.append((lim.connector, kw, kw - (before[0] if before else float("inf"))))
    return [(device, kw) for device, kw, _ in sorted(out, key=lambda x: (x[2] > 0, x[0]))]


def over_cap(measured_kw: float, headroom_kw: float, since_ms: int | None, now_ms: int,
             after_ms: int) -> tuple[int | None, bool]:
    """(since when the chargers draw above the headroom, or None; whether that has lasted past `after_ms`)."""
    if measured_kw <= headroom_kw + OVER_CAP_TOLERANCE_KW:
        return None, False
    since = now_ms if since_ms is None else since_ms
    return since, now_ms - since >= after_ms


def worst_offender(draws: Mapping[str, float], limits: Mapping[str, float]) -> str:
    """The charger drawing most above its limit (the one most likely not obeying); ties by name."""
    return max(sorted(draws), key=lambda d: draws[d] - limits.get(d, 0.0))


def starved(allocation: Allocation, starve_after_ms: int) -> set[str]:
    """Chargers whose car is still paused past the starvation bound: even served first, it found no room."""
    return {lim.connector for lim in allocation.limits if lim.state == "paused" and lim.paused_since_ms is not None
            and allocation.at_ms - lim.paused_since_ms >= starve_after_ms}


class PlanIn(BaseModel):
    """A resident's plan for the car charging now (through the operator who enters it)."""

    model_config = ConfigDict(extra="forbid")
    energy_kwh: float | None = Field(None, gt=0, le=1000, description="Energy wanted from this session in all, kWh")
    departure: int | None = Field(None, gt=0, le=9_223_372_036_854, description="Planned departure, epoch ms")
    deferrable: bool = Field(False, description="May wait for the off-peak hours (谷电)")


class PlanOut(BaseModel):
    session: str = Field(description="The open session the plan belongs to")
    energy_kwh: float | None = Field(description="Energy wanted from the session in all")
    remaining_kwh: float | None = Field(description="Still wanted: the energy less what the session took")
    departure: int | None = Field(description="Planned departure, epoch ms")
    deferrable: bool


def plan_out(seen: ChargerSeen) -> PlanOut | None:
    plan = seen.current_plan()
    if plan is None:
        return None
    return PlanOut(session=plan.session, energy_kwh=plan.energy_kwh, remaining_kwh=seen.remaining_kwh(),
                   departure=plan.departure_ms, deferrable=plan.deferrable)


class ReasonOut(BaseModel):
    code: str
    en: str
    zh: str


class ChargingConnectorOut(BaseModel):
    device: str = Field(description="The charger (one allocator connector per charger)")
    state: str = Field(description="admitted, paused or idle")
    reason: ReasonOut
    limit_kw: float = Field(description="The limit the allocator gives it now")
    sent_kw: float | None = Field(description="The last limit it acknowledged (None: none yet)")
    paused_since: int | None = Field(description="Epoch ms since when its car waits, when paused")
    online: bool
    status: str | None = Field(description="Its connectors' statuses")
    power_kw: float = Field(description="What it draws now (measured)")
    soc_pct: float | None = Field(description="The car's state of charge, when the charger knows it")
    session_kwh: float | None = Field(description="Energy of the open session so far")
    plan: PlanOut | None = Field(None, description="The resident's plan for the open session, when given")


class ChargingOut(BaseModel):
    site: str
    at: int = Field(description="Epoch ms of the allocation")
    capacity_kw: float
    base_load_kw: float
    base_load_measured: bool = Field(description="Measured at the transformer's meter (else configured)")
    reserved_kw: float = Field(description="Kept for chargers that went offline at their last limit")
    headroom_kw: float
    used_kw: float = Field(description="What the allocation lets the chargers draw together")
    measured_kw: float = Field(description="What the chargers draw now")
    off_peak: bool
    connectors: list[ChargingConnectorOut]


def view(site: str, allocation: Allocation, measured: bool, chargers: Mapping[str, ChargerInput],
         sent: Mapping[str, tuple[float, int]], reserved_kw: float = 0.0) -> ChargingOut:
    """`GET /api/charging/{site}`: the allocation and why, each charger's draw and its car's progress."""
    rows = []
    for lim in allocation.limits:
        c = chargers.get(lim.connector)
        progress = c.seen.progress() if c is not None else {"soc_pct": None, "session_kwh": None,
                                                            "power_kw": 0.0, "status": None}
        before = sent.get(lim.connector)
        rows.append(ChargingConnectorOut(
            device=lim.connector, state=lim.state,
            reason=ReasonOut(code=lim.reason.code, en=lim.reason.en, zh=lim.reason.zh), limit_kw=limit_kw(lim),
            sent_kw=before[0] if before else None, paused_since=lim.paused_since_ms,
            online=c.online if c is not None else False, plan=plan_out(c.seen) if c is not None else None,
            **progress))
    measured_kw = sum(r.power_kw for r in rows if r.online)
    return ChargingOut(site=site, at=allocation.at_ms, capacity_kw=round(allocation.capacity_kw, 3),
                       base_load_kw=round(allocation.base_load_kw - reserved_kw, 3), base_load_measured=measured,
                       reserved_kw=round(reserved_kw, 3),
                       headroom_kw=round(allocation.headroom_kw, 3), used_kw=round(allocation.used_kw, 3),
                       measured_kw=round(measured_kw, 3), off_peak=allocation.off_peak, connectors=rows)


@dataclass(slots=True)
class _SiteRun:
    allocation: Allocation | None = None
    sent: dict[str, tuple[float, int]] = field(default_factory=dict)
    over_since_ms: int | None = None
    over_device: str | None = None
    paused_alerted: set[str] = field(default_factory=set)
    reserved: dict[str, tuple[float, int]] = field(default_factory=dict)
    measured_base: bool = False
    chargers: dict[str, ChargerInput] = field(default_factory=dict)


class ChargingControl:
    """The async edge: hears charger and transformer-meter messages, runs the rounds, sends, alerts."""

    name = "orderly-charging"

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], ChargerSeen] = {}
        self.sites: dict[str, _SiteRun] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._ctx: ControlContext | None = None
        self._rounds: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._keys: dict[str, list[tuple[str, str, str]]] = {}
        self._indexed = -1
        """How many registry entries `_keys` was built from (-1: none yet)"""

    def on_message(self, msg: Accepted, state: Any) -> None:
        """Pipeline listener: cheap; folds a charger's message in and marks its site for the next round."""
        if msg.kind == KIND:
            if self.seen.setdefault((msg.site, msg.device), ChargerSeen()).fold(msg):
                self._mark(msg.site)
        elif msg.kind == METER and msg.channel == "telemetry" and self._ctx is not None:
            device = self._ctx.registry.get((msg.site, msg.kind, msg.device))
            if device is not None and device.role == TRANSFORMER_ROLE:
                self._mark(msg.site)

    def _mark(self, site: str) -> None:
        self._dirty.add(site)
        self._wake.set()

    async def run(self, ctx: ControlContext) -> None:
        self._ctx = ctx
        try:
            await self._loop(ctx)
        finally:  # cancelled (the hub stops) or failed (the supervisor restarts it): its rounds go with it
            self.stop()

    async def _loop(self, ctx: ControlContext) -> None:
        t = ctx.settings
        last_full = -1 << 62
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=t.charging_period_s)  # type: ignore[attr-defined]
                await asyncio.sleep(t.charging_debounce_s)  # type: ignore[attr-defined]
            except TimeoutError:
                pass
            self._wake.clear()
            now = ctx.clock()
            full = now - last_full >= t.charging_period_s * 1000  # type: ignore[attr-defined]
            if full:
                last_full = now
            sites = set(self.controlled_sites(ctx)) if full else set(self._dirty)
            self._dirty.clear()
            for site in sorted(sites):
                self._start(ctx, site)

    def _start(self, ctx: ControlContext, site: str) -> None:
        """The site's round as its own task, so a charger that never answers holds up only its own site (for
        the command timeout), never the others'. One round per site at a time (its cuts are acknowledged
        before its raises): a site still in a round runs again once that one ends."""
        task = self._rounds.get(site)
        if task is not None and not task.done():
            self._again.add(site)
            return
        self._rounds[site] = asyncio.create_task(self._guarded(ctx, site), name=f"charging-{site}")

    async def _guarded(self, ctx: ControlContext, site: str) -> None:
        try:
            await self.round(ctx, site)
        except Exception:  # one site's trouble must not stop the others
            log.exception("orderly charging at site %s failed this round", site)
        finally:
            if site in self._again:
                self._again.discard(site)
                self._mark(site)

    def stop(self) -> None:
        """Cancel the sites' rounds still running."""
        for task in self._rounds.values():
            task.cancel()
        self._rounds.clear()
        self._again.clear()

    def controlled_sites(self, ctx: ControlContext) -> list[str]:
        self._indexed = -1  # the periodic full round reads the registry afresh, whatever happened to it
        with_chargers = {d.site for d in ctx.registry if d.kind == KIND}
        return [slug for slug, s in ctx.registry.sites.items() if s.has_capacity and slug in with_chargers]

    def site_devices(self, registry: Any, site: str) -> list[Any]:
        """The site's registry entries. Walking the whole registry for each site's round cost 50 sites of
        2,000 devices seconds of the event loop; the keys are indexed by site instead, again whenever the
        registry's size changes (and at every full round), and each entry is read anew (one may be replaced)."""
        if len(registry) != self._indexed:
            keys: dict[str, list[tuple[str, str, str]]] = {}
            for d in registry:
                keys.setdefault(d.site, []).append(d.key)
            self._keys, self._indexed = keys, len(registry)
        return [d for key in self._keys.get(site, ()) if (d := registry.get(key)) is not None]

    def gather(self, ctx: ControlContext, site: str, now_ms: int) -> tuple[float | None, dict[str, ChargerInput]]:
        """The measured base load (None: no transformer meter heard) and the site's chargers, from live state."""
        base: float | None = None
        chargers: dict[str, ChargerInput] = {}
        for d in self.site_devices(ctx.registry, site):
            state = ctx.live.devices.get(d.key)
            online = state is not None and state.online(now_ms, ctx.live.heartbeat_for(d))
            if d.kind == KIND:
                chargers[d.device] = ChargerInput(d.device, online, self.seen.get((site, d.device), ChargerSeen()),
                                                  d.max_current_a, d.phases, d.priority)
            elif d.kind == METER and d.role == TRANSFORMER_ROLE and online and state is not None:
                power = state.telemetry.get("power_kw")
                if power is not None and state.telemetry.get("utility", "electricity") == "electricity":
                    base = (base or 0.0) + power
        return base, chargers

    async def round(self, ctx: ControlContext, site: str) -> Allocation | None:
        config = ctx.registry.sites.get(site)
        if config is None or not config.has_capacity:
            return None
        t = ctx.settings
        starve_ms = int(t.charging_starve_after_s * 1000)  # type: ignore[attr-defined]
        now = ctx.clock()
        run = self.sites.setdefault(site, _SiteRun())
        base, chargers = self.gather(ctx, site, now)
        online = [d for d, c in chargers.items() if c.online]
        run.reserved = reserve(run.sent, run.reserved, online, now, DEADMAN_AFTER_S * 1000)
        kept = sum(kw for kw, _ in run.reserved.values())
        inputs = site_inputs(config, base, list(chargers.values()), starve_ms, kept)
        allocation = allocate(*inputs, now, previous=run.allocation)
        run.allocation, run.chargers, run.measured_base = allocation, chargers, base is not None
        sends = to_send(allocation, run.sent, online, now, int(t.charging_renew_s * 1000))  # type: ignore[attr-defined]
        cuts = [(d, kw) for d, kw in sends if d in run.sent and kw < run.sent[d][0]]
        raises = [s for s in sends if s not in cuts]
        by_device = {lim.connector: lim for lim in allocation.limits}
        connectors = {c.id: c for c in inputs[1]}

        def args(device: str, kw: float) -> dict[str, float | int]:
            then = deadman_kw(by_device[device], allocation.safe_share_kw, connectors[device])
            return {"limit_kw": kw, "then_kw": then, "after_s": DEADMAN_AFTER_S}

        for batch in (cuts, raises):  # the cuts are acknowledged before anything rises
            replies = await asyncio.gather(*(ctx.send_command(site, KIND, d, "set_limit", args(d, kw))
                                             for d, kw in batch))
            for (d, kw), reply in zip(batch, replies, strict=True):
                if reply.get("ok"):
                    run.sent[d] = (kw, ctx.clock())
        self.check_alerts(ctx, site, run, now)
        return allocation

    def check_alerts(self, ctx: ControlContext, site: str, run: _SiteRun, now_ms: int) -> None:
        assert run.allocation is not None
        t = ctx.settings
        draws = {d: c.seen.power_kw for d, c in run.chargers.items() if c.online}
        measured = sum(draws.values())
        run.over_since_ms, lasting = over_cap(measured, run.allocation.headroom_kw, run.over_since_ms, now_ms,
                                              int(t.charging_over_cap_s * 1000))  # type: ignore[attr-defined]
        if lasting and run.over_device is None and draws:
            run.over_device = worst_offender(draws, {d: kw for d, (kw, _) in run.sent.items()})
            ctx.raise_alert(site, run.over_device, OVER_CAP,
                            f"chargers draw {measured:.1f} kW, headroom {run.allocation.headroom_kw:.1f} kW")
        elif run.over_since_ms is None and run.over_device is not None:
            ctx.clear_alert(site, run.over_device, OVER_CAP)
            run.over_device = None
        stuck = starved(run.allocation, int(t.charging_starve_after_s * 1000))  # type: ignore[attr-defined]
        for device in sorted(stuck - run.paused_alerted):
            ctx.raise_alert(site, device, PAUSED_LONG, "no headroom for the 6 A minimum even when served first")
        for device in sorted(run.paused_alerted - stuck):
            ctx.clear_alert(site, device, PAUSED_LONG)
        run.paused_alerted = stuck

    def answer(self, site: str) -> ChargingOut | None:
        """The site's last allocation; before the first round (or at a site without chargers), what it would
        be now, sending nothing. None for a site without a declared capacity."""
        run = self.sites.get(site)
        if run is not None and run.allocation is not None:
            return view(site, run.allocation, run.measured_base, run.chargers, run.sent,
                        sum(kw for kw, _ in run.reserved.values()))
        ctx = self._ctx
        config = ctx.registry.sites.get(site) if ctx is not None else None
        if ctx is None or config is None or not config.has_capacity:
            return None
        now = ctx.clock()
        base, chargers = self.gather(ctx, site, now)
        inputs = site_inputs(config, base, list(chargers.values()), int(ctx.settings.charging_starve_after_s * 1000))  # type: ignore[attr-defined]
        return view(site, allocate(*inputs, now), base is not None, chargers, {})

    def load(self, site: str) -> tuple[float, float] | None:
        """(kW the site's online chargers draw now, kW of headroom its last allocation had for them), the
        figures `answer` gives without building it (the district wall asks for every community at once);
        None before the site's first round."""
        run = self.sites.get(site)
        if run is None or run.allocation is None:
            return None
        return sum(c.seen.power_kw for c in run.chargers.values() if c.online), run.allocation.headroom_kw

    def set_plan(self, site: str, device: str, body: PlanIn) -> PlanOut | tuple[int, str]:
        """Keep a resident's plan with the charger's open session and run the site's allocation again; or
        (status, why) it cannot be: no orderly charging there, no such charger, no session open."""
        ctx = self._ctx
        config = ctx.registry.sites.get(site) if ctx is not None else None
        if ctx is None or config is None or not config.has_capacity:
            return 404, f"no orderly charging at site {site!r}: it declares no capacity"
        if ctx.registry.get((site, KIND, device)) is None:
            return 404, f"no charger {device!r} at site {site!r}"
        seen = self.seen.setdefault((site, device), ChargerSeen())
        if seen.session is None:
            return 409, f"{device} has no session open: a plan belongs to the car charging now"
        seen.plan = Plan(seen.session, body.energy_kwh, body.departure, body.deferrable)
        self._mark(site)
        out = plan_out(seen)
        assert out is not None
        return out

    def routes(self) -> list[Any]:
        """`GET /api/charging/{site}` for viewers; `PUT /api/charging/{site}/{charger}/plan` for operators."""
        from fastapi import APIRouter, HTTPException

        from hub.api.common import WRITE, audited
        from hub.api.deps import AuditDep, Operator, Viewer
        from hub.api.guard import GuardedRoute
        from hub.api.schemas import DevicePath, SitePath, errors

        router = APIRouter(prefix="/api", route_class=GuardedRoute, tags=["charging"])

        async def charging(site: str, user: object) -> ChargingOut:
            """The site's orderly charging now: capacity, base load, headroom, and each charger's limit and why."""
            out = self.answer(site)
            if out is None:
                raise HTTPException(404, f"no orderly charging at site {site!r}: it declares no capacity")
            return out

        # this module postpones its annotations, and FastAPI needs the real ones (imported here, not above:
        # the hub's API imports the kinds)
        charging.__annotations__ = {"site": SitePath, "user": Viewer, "return": ChargingOut}
        router.get("/charging/{site}", response_model=ChargingOut, responses=errors(401, 403, 404))(charging)

        async def plan(site: str, charger: str, body: PlanIn, audit: Any, user: Any) -> PlanOut:
            """A resident's plan for the car charging now (energy wanted, planned departure, deferrable): the
            allocator's urgency and off-peak deferral for that session, until it ends. Audited."""

            def run() -> Any:
                out = self.set_plan(site, charger, body)
                if isinstance(out, tuple):
                    raise HTTPException(*out)
                return out

            return audited(audit, user, "charging.plan", f"{site}/{KIND}/{charger}", body, run)  # type: ignore[return-value]

        plan.__annotations__ = {"site": SitePath, "charger": DevicePath, "body": PlanIn, "audit": AuditDep,
                                "user": Operator, "return": PlanOut}
        router.put("/charging/{site}/{charger}/plan", response_model=PlanOut,
                   responses=WRITE | errors(404, 409))(plan)
        return [router]
