"""Simulated EV charger (OCPP 1.6 statuses): evening-heavy sessions, a power curve, a meter.

It obeys the hub's `set_limit` (orderly charging: the power cap moves with the
transformer's load) and `stop_session`. Power ramps up, holds at the lower of
the car's and the cap's limit, and tapers as the battery fills; the meter only
ever counts up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from devices.charger import SetLimit
from devices.charging import Allocation, allocate
from devices.charging_control import ChargerInput, ChargerSeen, site_inputs, to_send
from simulators.base import Emit, SimDevice, SimKind, daily, plain

ARRIVALS_PER_HOUR = [.05, .03, .02, .02, .02, .03, .05, .08, .08, .06, .05, .05,
                     .06, .05, .05, .06, .08, .2, .45, .5, .4, .25, .12, .08]
MAX_KW = 7.0
TICK_CHARGING_MS = 30_000
TICK_IDLE_MS = 30_000
TELEMETRY_IDLE_EVERY_MS = 30_000
"""A pile reports its meter every 30 s, idle or not (as an OCPP MeterValueSampleInterval does): the wall's
charging curve averages each charger's samples per bucket, and idle samples spaced wider than charging ones
would overweight the charging minutes of a bucket in which a session ended (29 kW against a 28 kW cap that
the chargers never drew above together)."""
SESSION_HOURS = 3
"""About how long a session lasts (8-40 kWh at up to 7 kW)."""
STEER_EVERY_MS = 30_000
"""How often a simulated past's chargers are reallocated: the live controller's own period."""
STARVE_AFTER_MS = 30 * 60_000


@dataclass
class Charger(SimDevice):
    kind_name: str = "charger"
    status: str = "available"
    meter_kwh: float = 0.0
    limit_kw: float = MAX_KW
    then_kw: float | None = None
    """set_limit's dead-man step: the cap after `then_at_ms` unless a newer set_limit comes first"""
    then_at_ms: int = 0
    session: str | None = None
    session_start_ms: int = 0
    session_start_kwh: float = 0.0
    wanted_kwh: float = 0.0
    power_kw: float = 0.0
    temperature_c: float = 24.0
    last_ms: int = 0
    last_telemetry_ms: int = 0
    status_until: int = 0

    def __post_init__(self) -> None:
        self.meter_kwh = round(self.rng.uniform(200, 9000), 2)

    def start(self, now_ms: int) -> tuple[list[Emit], int]:
        """Come online mid-day as a real estate would: some cars already plugged in, as many as the last
        few hours' arrivals leave charging (sessions last about 3 hours), not every charger idle."""
        emits, wake = super().start(now_ms)
        hour = int((now_ms / 3_600_000 + 8) % 24)
        plugged_in = min(0.9, sum(ARRIVALS_PER_HOUR[(hour - k) % 24] for k in range(SESSION_HOURS)))
        if self.status == "available" and self.rng.random() < plugged_in:
            emits += self._start(now_ms)
            wake = now_ms + TICK_CHARGING_MS
        return emits, wake

    def _telemetry(self, now_ms: int) -> Emit:
        self.last_telemetry_ms = now_ms
        current = self.power_kw * 1000 / 230
        return self.telemetry(now_ms, connector=1, status=self.status, power_kw=round(self.power_kw, 2),
                              energy_kwh=round(self.meter_kwh, 3), voltage_v=round(self.rng.gauss(229, 1.5), 1),
                              current_a=round(current, 1), temperature_c=round(self.temperature_c, 1),
                              limit_kw=self.limit_kw)

    def behave(self, now_ms: int) -> tuple[list[Emit], int]:
        dt_ms = now_ms - self.last_ms if self.last_ms else TICK_IDLE_MS
        self.last_ms = now_ms
        out: list[Emit] = []
        if self.then_kw is not None and now_ms >= self.then_at_ms:  # the hub stopped renewing: fall to the step
            self.limit_kw, self.then_kw = self.then_kw, None
        if self.status == "available" and self.poisson(daily(now_ms, ARRIVALS_PER_HOUR), dt_ms):
            self.status, self.status_until = "preparing", now_ms + 30_000
            out.append(self._telemetry(now_ms))
        elif self.status == "preparing" and now_ms >= self.status_until:
            out += self._start(now_ms)
        elif self.status == "charging":
            self.meter_kwh += self.power_kw * dt_ms / 3_600_000
            delivered = self.meter_kwh - self.session_start_kwh
            if delivered >= self.wanted_kwh:
                out += self._stop(now_ms, "ev_disconnected")
            else:
                taper = 1.0 if delivered < 0.8 * self.wanted_kwh else max(0.2, (self.wanted_kwh - delivered)
                                                                         / (0.2 * self.wanted_kwh))
                self.power_kw = min(MAX_KW, self.limit_kw) * taper
        elif self.status == "finishing" and now_ms >= self.status_until:
            self.status = "available"
        target_c = 24 + self.power_kw * 2.2
        self.temperature_c += (target_c - self.temperature_c) * 0.3 + self.rng.gauss(0, 0.2)
        if self.status == "charging" and self.rng.random() < 0.0002:
            out += self.raise_fault(now_ms, "over_current_failure", 60_000)
        charging = self.status == "charging"
        if charging or now_ms - self.last_telemetry_ms >= TELEMETRY_IDLE_EVERY_MS:
            out.append(self._telemetry(now_ms))
        return out, now_ms + (TICK_CHARGING_MS if charging or self.status == "preparing" else TICK_IDLE_MS)

    def _start(self, now_ms: int) -> list[Emit]:
        self.session = f"S{now_ms // 1000}-{self.device}"
        self.session_start_ms, self.session_start_kwh = now_ms, self.meter_kwh
        self.wanted_kwh = round(self.rng.uniform(8, 40), 1)
        self.status, self.power_kw = "charging", min(MAX_KW, self.limit_kw)
        return [self.event(now_ms, "session_start", session=self.session, connector=1,
                           id_tag=f"tag-{self.rng.getrandbits(32):08x}", meter_start_kwh=round(self.meter_kwh, 3)),
                self._telemetry(now_ms)]

    def _stop(self, now_ms: int, reason: str) -> list[Emit]:
        out = [self.event(now_ms, "session_stop", session=self.session,
                          energy_kwh=round(self.meter_kwh - self.session_start_kwh, 3),
                          duration_s=round((now_ms - self.session_start_ms) / 1000, 1), reason=reason)]
        self.status, self.status_until, self.power_kw, self.session = "finishing", now_ms + 60_000, 0.0, None
        return [*out, self._telemetry(now_ms)]

    def scenario(self, now_ms: int, action: str, **args: Any) -> list[Emit]:
        if action == "overheat":
            self.temperature_c = 85.0
            out = self._stop(now_ms, "high_temperature") if self.status == "charging" else []
            self.status = "faulted"
            self.forced.append((now_ms + args.get("lasts_ms", 600_000), "recover", {}))
            return [*self.raise_fault(now_ms, "high_temperature", args.get("lasts_ms", 600_000), "85 C at the plug"),
                    *out, self._telemetry(now_ms)]
        if action == "recover":
            self.status, self.temperature_c = "available", 35.0
            return [self._telemetry(now_ms)]
        return super().scenario(now_ms, action, **args)

    def apply(self, now_ms: int, op: str, args: Any) -> tuple[str | None, list[Emit]]:
        if op == "set_limit":
            self.limit_kw = round(min(MAX_KW, args.limit_kw), 2)
            self.then_kw = None if args.then_kw is None else round(min(MAX_KW, args.then_kw), 2)
            self.then_at_ms = now_ms + 1000 * (args.after_s or 0)
            if self.status == "charging":
                self.power_kw = min(self.power_kw, self.limit_kw)
            return None, [self._telemetry(now_ms)]
        if op != "stop_session":  # the operators' OCPP-only ops (the contract): an MQTT charger has none of them
            return f"{op} is not supported by this charger (OCPP only)", []
        if self.status != "charging":
            return "no session in progress", []
        if args.session and args.session != self.session:
            return f"session {args.session!r} is not the one in progress", []
        return None, self._stop(now_ms, "remote")


def orderly(devices: Sequence[SimDevice], site: Any) -> Callable[[int], list[tuple[SimDevice, list[Emit]]]]:
    """The hub's orderly charging for a simulated past (`smarthub demo --history`), where no controller runs:
    each call is one round at that simulated time over these chargers of a site with a capacity (`site`: its
    registry entry), with the controller's own inputs (`site_inputs`), allocator and sending rule (`to_send`),
    each limit applied as the `set_limit` the hub would send (cuts first). So the stored past keeps under the
    cap line as the live hub does; returns (charger, what it publishes)."""
    chargers = sorted((d for d in devices if isinstance(d, Charger)), key=lambda d: d.device)
    by_id = {d.device: d for d in chargers}
    previous: list[Allocation] = []

    def round_(now_ms: int) -> list[tuple[SimDevice, list[Emit]]]:
        inputs = [ChargerInput(d.device, True, ChargerSeen(connectors={1: {"status": d.status}})) for d in chargers]
        allocation = allocate(*site_inputs(site, None, inputs, STARVE_AFTER_MS), now_ms,
                              previous=previous[0] if previous else None)
        previous[:] = [allocation]
        sent = {d.device: (d.limit_kw, now_ms) for d in chargers}
        moves = to_send(allocation, sent, list(by_id), now_ms, renew_ms=1 << 62)
        return [(by_id[d], by_id[d].apply(now_ms, "set_limit", SetLimit(limit_kw=kw))[1]) for d, kw in moves]

    return round_


SIM = SimKind("charger", share=0.14, short="ev", make=plain(Charger))
