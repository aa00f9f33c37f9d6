"""What every simulated device shares: simulated time, a seeded random stream, seq, ids,
and payloads built through the `devices/` models so a simulator cannot drift from the contract.

A device is a small state machine driven by a discrete-event runner: `start` says
what it publishes when it comes online, `step` advances it to a simulated time and
returns what it publishes plus when it wants to be woken next, `command` answers a
`cmd`. Nothing here reads the wall clock or global randomness, so a seed and a
start time give the same messages, byte for byte.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ValidationError

from devices import REGISTRY
from devices.base import CommandPayload, DeviceKind

CHINA = timezone(timedelta(hours=8))
Emit = tuple[str, dict[str, Any]]
"""(channel, payload)"""
OFFLINE_STATE: dict[str, Any] = {"online": False}
"""The retained `state` of a device that is gone: its MQTT last will, and its goodbye on a clean stop."""


def iso(ms: int) -> str:
    """Simulated epoch ms as ISO 8601 in China time, the way devices there stamp messages."""
    return datetime.fromtimestamp(ms / 1000, CHINA).isoformat(timespec="milliseconds")


def hour_of_day(ms: int) -> float:
    """Local (China) hour of day as a float, 0..24."""
    return ((ms / 3_600_000) + 8) % 24


def daily(ms: int, profile: list[float]) -> float:
    """A 24-value hourly profile, interpolated linearly at a simulated time."""
    h = hour_of_day(ms)
    i = int(h)
    frac = h - i
    return profile[i] * (1 - frac) + profile[(i + 1) % 24] * frac


@dataclass
class Fault:
    code: str
    until_ms: int
    detail: str | None = None


@dataclass
class SimDevice:
    """Base of every simulated device; subclasses implement `behave` (and maybe `apply`)."""

    site: str
    device: str
    rng: random.Random
    building: str | None = None
    kind_name: str = "?"
    seq: int = 0
    next_id: int = 0
    faults: dict[str, Fault] = field(default_factory=dict)
    forced: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    """Scenario hooks: (at ms, action, args), applied in `step` when their time comes."""

    @property
    def kind(self) -> DeviceKind:
        return REGISTRY[self.kind_name]

    # -- building messages -------------------------------------------------------------

    def _stamp(self, payload: dict[str, Any], now_ms: int) -> dict[str, Any]:
        self.seq += 1
        return {"ts": iso(now_ms), "seq": self.seq, **payload}

    def _new_id(self, prefix: str) -> str:
        self.next_id += 1
        return f"{self.device}-{prefix}{self.next_id}"

    @staticmethod
    def _dump(model: BaseModel) -> dict[str, Any]:
        return model.model_dump(mode="json", exclude_none=True)

    def telemetry(self, now_ms: int, **fields: Any) -> Emit:
        model = self.kind.telemetry(**self._stamp(fields, now_ms))
        return ("telemetry", self._dump(model))

    def event(self, now_ms: int, type_: str, event_id: str | None = None, **fields: Any) -> Emit:
        """A contract event, validated through the kind's event models."""
        payload = self._stamp({"type": type_, "id": event_id or self._new_id(type_[0]), **fields}, now_ms)
        return ("event", self._dump(self.kind.validate_event(payload)))

    def raise_fault(self, now_ms: int, code: str, lasts_ms: int, detail: str | None = None) -> list[Emit]:
        if code in self.faults:
            return []
        self.faults[code] = Fault(code, now_ms + lasts_ms, detail)
        return [self.event(now_ms, "fault", code=code, active=True, detail=detail)]

    def clear_faults(self, now_ms: int) -> list[Emit]:
        """Clear faults whose time is up."""
        out = []
        for code, fault in list(self.faults.items()):
            if fault.until_ms <= now_ms:
                del self.faults[code]
                out.append(self.event(now_ms, "fault", code=code, active=False))
        return out

    def poisson(self, rate_per_hour: float, dt_ms: int) -> int:
        """How many events happen in `dt_ms` at an hourly rate (Knuth's method; small rates)."""
        lam = rate_per_hour * dt_ms / 3_600_000
        if lam <= 0:
            return 0
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    # -- the runner's interface --------------------------------------------------------

    def start(self, now_ms: int) -> tuple[list[Emit], int]:
        """Come online: the retained `state`, then the first step."""
        state = {"online": True, "fw": "2.4.1", "model": f"SIM-{self.kind_name.upper()}"}
        emits, wake = self.step(now_ms)
        return [("state", state), *emits], wake

    def stop(self) -> list[Emit]:
        """Go offline on purpose (the simulator stops): a clean disconnect sends no last will, so say it."""
        return [("state", dict(OFFLINE_STATE))]

    def step(self, now_ms: int) -> tuple[list[Emit], int]:
        """Advance to `now_ms`; what to publish and when to be woken next."""
        out: list[Emit] = []
        while self.forced and self.forced[0][0] <= now_ms:
            _, action, args = self.forced.pop(0)
            out.extend(self.scenario(now_ms, action, **args))
        emits, wake = self.behave(now_ms)
        out.extend(emits)
        out.extend(self.clear_faults(now_ms))
        if self.forced:
            wake = min(wake, self.forced[0][0])
        return out, wake

    def behave(self, now_ms: int) -> tuple[list[Emit], int]:
        raise NotImplementedError

    def scenario(self, now_ms: int, action: str, **args: Any) -> list[Emit]:
        """Scripted incidents; the default knows only `fault`."""
        if action == "fault":
            return self.raise_fault(now_ms, args["code"], args.get("lasts_ms", 120_000), args.get("detail"))
        raise ValueError(f"{self.kind_name} has no scenario action {action!r}")

    def command(self, now_ms: int, raw: bytes) -> tuple[dict[str, Any] | None, list[Emit]]:
        """Answer a `cmd`: (reply payload or None if unreadable, messages it causes)."""
        try:
            cmd = CommandPayload.model_validate_json(raw)
        except ValidationError:
            return None, []
        spec = self.kind.commands.get(cmd.op)
        if spec is None:
            return {"id": cmd.id, "ok": False, "error": f"{self.kind_name} has no op {cmd.op!r}"}, []
        try:
            args = spec.model_validate(cmd.args)
        except ValidationError as exc:
            return {"id": cmd.id, "ok": False, "error": str(exc.errors()[0]["msg"])}, []
        error, emits = self.apply(now_ms, cmd.op, args)
        return {"id": cmd.id, "ok": error is None, **({"error": error} if error else {})}, emits

    def apply(self, now_ms: int, op: str, args: BaseModel) -> tuple[str | None, list[Emit]]:
        """Carry out a command; (error or None, messages)."""
        return f"{op} is not simulated", []

    def registry_fields(self) -> dict[str, Any]:
        """Registry attributes beyond site, kind, device and building (`registry_of` writes them)."""
        return {}


def in_buildings(n: int, buildings: int) -> str | None:
    """The nth device of a kind that lives in buildings: spread round the buildings, one each in turn."""
    return str((n - 1) % buildings + 1)


def on_site(n: int, buildings: int) -> str | None:
    """A device of the site as a whole (a gate, a charger): in no building."""
    return None


@dataclass(frozen=True)
class SimKind:
    """How a community simulates one kind: its share of the devices, how devices are named and placed,
    and how one is made. Each `simulators/<kind>.py` declares one as `SIM`; `simulators.kinds` lists them."""

    name: str
    share: float
    """Weight of the kind in a community of a given size (every kind gets at least one device)."""
    short: str
    """Device names: b3-el2 is building 3's second elevator; ev-4 the fourth charger."""
    make: Callable[..., SimDevice]
    """(site=, device=, rng=, building=, number=, buildings=) -> the device"""
    building: Callable[[int, int], str | None] = on_site
    """(number of the device within its kind, buildings) -> its building or None"""
    sees: str | None = None
    """The kind whose devices in the same building this kind's look at (a building's cameras its doors), one
    each in turn: the registry's `sees`, so the hub merges what they report into one incident."""


def plain(cls: type[SimDevice]) -> Callable[..., SimDevice]:
    """A maker for a kind whose devices need nothing but site, name, random stream and building."""
    def make(site: str, device: str, rng: random.Random, building: str | None, number: int,
             buildings: int) -> SimDevice:
        return cls(site=site, device=device, rng=rng, building=building)
    return make
