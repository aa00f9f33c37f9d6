"""The one data path: topic -> redelivery check -> decode/validate -> normalise -> store, live state, listeners.

`Pipeline.handle` is synchronous and never raises: a bad message becomes a
`Rejected` (dead-lettered and counted), a failing `MessageAccepted` handler
(`hub.events`) is logged by name and counted, and neither stops the next message. Points, and the keys that
recognise redeliveries (`hub.ingest.redelivery`), are appended to the durable
outbox in one transaction per `flush`; the MQTT edge acknowledges only after it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from devices.base import Accepted, DeviceKind, Refused
from hub import topics
from hub.deadletter import DeadLetters
from hub.events import Events
from hub.ingest.decode import DecodeError, Rejected, decode
from hub.ingest.normalize import SeriesClock, event_key, point_time, track_seq
from hub.ingest.redelivery import Deliveries, EventKeys, Repeats
from hub.ratelog import RateGate
from hub.registry import DeviceKey, Registry
from hub.state import LiveState
from hub.storage import lineproto
from hub.storage.batch import Batch
from hub.storage.outbox import Outbox

log = logging.getLogger(__name__)

TOPIC_CACHE_MAX = 200_000


@dataclass(slots=True)
class IngestStats:
    """Plain counters (cheap on the hot path); `hub.metrics` exposes them to Prometheus."""

    received: int = 0
    accepted: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(kind, channel) -> count"""
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(kind, reason) -> count; kind is '' when the topic named none we know"""
    duplicates: Counter[str] = field(default_factory=Counter)
    """kind -> events dropped because their id was stored before"""
    redelivered: int = 0
    """DUP messages dropped because they were committed before (the broker sent them again)"""
    repeated: int = 0
    """messages with their own ts or seq seen again byte for byte on the same topic (dropped)"""
    state_cleared: Counter[str] = field(default_factory=Counter)
    """kind -> empty `state` messages: a device (or its owner) clearing its retained state; not a rejection"""
    seq: Counter[str] = field(default_factory=Counter)
    """'gap' (messages missed), 'duplicate', 'reset'"""
    clock_skew: int = 0
    listener_errors: int = 0
    points: int = 0


class Pipeline:
    def __init__(
        self,
        root: str,
        kinds: Mapping[str, DeviceKind],
        registry: Registry,
        live: LiveState,
        outbox: Outbox,
        dead_letters: DeadLetters,
        events: Events | None = None,
    ) -> None:
        """`events` holds the `MessageAccepted` handlers (alerts, live bus, command replies, ...)."""
        self.root = root
        self.kinds = kinds
        self.registry = registry
        self.live = live
        self.outbox = outbox
        self.dead_letters = dead_letters
        self.events = events or Events()
        self._handlers = self.events.message_calls  # the same list: handlers registered later are called too
        self.stats = IngestStats()
        self._batch: Batch = outbox.wire.batch()
        """What `flush` commits: the accepted points, already in the store's wire format."""
        self.deliveries = Deliveries()
        self.deliveries.load(outbox.delivery_keys())
        self.event_keys = EventKeys()
        self.repeats = Repeats()
        self.event_keys.load(outbox.event_key_digests(self.event_keys.capacity))
        self._clock = SeriesClock()
        self._topics: dict[str, topics.TopicParts] = {}
        self._tags: dict[DeviceKey, Mapping[str, str]] = {}
        self._check_memory: dict[DeviceKey, dict[str, Any]] = {}
        """device -> what its kind's checks keep (`DeviceKind.checks`), only for kinds that declare checks: one
        small dict per device, as bounded as the registry's devices and `_tags` (a device the hub has heard of)."""
        self.reject_log = RateGate()
        """One WARNING per rejection reason per 10 s: a flood of garbage must not flood the log."""

    def handle(self, topic: str, raw: bytes, received_ms: int, retain: bool = False, packet_id: int = 0,
               dup: bool = False) -> Accepted | Rejected | None:
        """Process one message; returns what became of it (None: a duplicate, dropped, or a cleared state).

        `packet_id` is the MQTT packet id of a QoS 1 delivery (0 otherwise), `dup` its DUP flag.
        """
        self.stats.received += 1
        if packet_id and self.redelivered(topic, packet_id, raw, dup):
            return None
        parts = self._topics.get(topic)
        if parts is None:
            try:
                parts = topics.parse(topic, self.root, self.kinds)
            except topics.UnknownKind as exc:
                return self._reject(Rejected.of(topic, "unknown_kind", str(exc), raw, received_ms))
            except topics.TopicError as exc:
                return self._reject(Rejected.of(topic, "bad_topic", str(exc), raw, received_ms))
            if len(self._topics) < TOPIC_CACHE_MAX:
                self._topics[topic] = parts
        if not raw and parts.channel == "state":  # how MQTT deletes a retained message: nothing to decode
            self.stats.state_cleared[parts.kind] += 1
            return None
        kind = self.kinds[parts.kind]
        try:
            payload = decode(kind, parts.channel, raw)
        except DecodeError as exc:
            return self._reject(Rejected.of(topic, exc.reason, exc.detail, raw, received_ms, parts.kind))

        key: DeviceKey = (parts.site, parts.kind, parts.device)
        state = self.live.get(key)
        seq = payload.seq  # type: ignore[attr-defined]
        if seq is not None and not retain:
            self.stats.seq[track_seq(state.seq, seq)] += 1
        if parts.channel == "event":
            dedupe_key = event_key(key, payload)
            if dedupe_key is not None and self.event_keys.seen(dedupe_key, received_ms):
                self.stats.duplicates[parts.kind] += 1
                return None
        if (not retain and parts.channel != "state" and (seq is not None or payload.ts is not None)  # type: ignore[attr-defined]
                and self.repeats.seen(topic, raw)):
            self.stats.repeated += 1
            return None

        time_ms, lag_ms, clock_ok = point_time(payload.ts, received_ms)  # type: ignore[attr-defined]
        if not clock_ok:
            self.stats.clock_skew += 1
        tags = self._tags.get(key)
        if tags is None:
            tags = self._tags[key] = self.registry.ensure(key).tags
        msg = Accepted(parts.site, parts.kind, parts.device, parts.channel, payload, received_ms, time_ms, lag_ms, tags,
                       retain)

        # A retained delivery repeats a message stored when it was first published
        # (a persistent session queues that one for us); it only refreshes live state.
        if not retain:
            if kind.checks:  # the one test a kind without checks pays
                refused = self._check(kind, key, msg)
                if refused is not None:
                    return self._reject(Rejected.of(topic, refused.reason, refused.detail, raw, received_ms,
                                                    parts.kind))
            points = kind.to_points(msg)
            place = self._clock.place
            for i, point in enumerate(points):
                given = place((point.measurement, *point.tags.values()), point.time_ms, raw)
                if given != point.time_ms:
                    points[i] = point._replace(time_ms=given)
            try:
                self._batch.add(points)  # encoded here, once: the check that the store can keep them
            except lineproto.Unstorable as exc:  # e.g. a tag value with a backslash: no store can keep it exactly
                return self._reject(Rejected.of(topic, "unstorable", str(exc), raw, received_ms, parts.kind))
            self.stats.points += len(points)
        self.stats.accepted[(parts.kind, parts.channel)] += 1
        self.live.apply(state, msg)
        for handler in self._handlers:  # `Events.emit` inlined: no event object, no name unless it fails
            try:
                handler(msg, state)
            except Exception as exc:  # noqa: BLE001 - one handler's bug must not stop ingest
                self.stats.listener_errors += 1
                self.events.failed("MessageAccepted", self.events.name_of(handler), exc, topic)
        return msg

    def redelivered(self, topic: str, packet_id: int, raw: bytes, dup: bool) -> bool:
        """Note a QoS 1 delivery; True when it is the broker's DUP copy of one already handled (drop it)."""
        deliveries = self.deliveries
        delivery = deliveries.key(topic, packet_id, raw)
        if dup and deliveries.seen(delivery):
            self.stats.redelivered += 1
            return True
        deliveries.new.append(delivery)
        return False

    def reject(self, rejected: Rejected) -> Rejected:
        """Dead-letter what an adapter could not map (the vendor's payload as received), kept at the next flush."""
        return self._reject(rejected)

    def _check(self, kind: DeviceKind, key: DeviceKey, msg: Accepted) -> Refused | None:
        """The first refusal of the kind's checks, or None. A retained delivery is never checked: it repeats a
        message judged when it was first published, and judging it again would move the memory backwards."""
        memory = self._check_memory.get(key)
        if memory is None:
            memory = self._check_memory[key] = {}
        for check in kind.checks:
            refused = check(msg, memory)
            if refused is not None:
                return refused
        return None

    def _reject(self, rejected: Rejected) -> Rejected:
        """Count and keep every rejection; log the first of each reason per interval (`hub.ratelog`)."""
        reason = rejected.reason
        self.stats.rejected[(rejected.kind, reason)] += 1
        self.dead_letters.add(rejected)
        write, held = self.reject_log.admit(reason)
        if write:
            more = f" ({held.count:,} more {reason} messages in the last {held.seconds:.0f} s)" if held else ""
            log.warning("rejected %s from %s: %s%s", reason, rejected.topic, rejected.detail[:300], more)
        return rejected

    def report_rejections(self) -> None:
        """Log how many rejections were held back in intervals that are over (called by flush and each second)."""
        for held in self.reject_log.due():
            log.warning("rejected %s more %s messages in the last %.0f s", f"{held.count:,}", held.key, held.seconds)

    @property
    def pending(self) -> int:
        return len(self._batch)

    def flush(self) -> None:
        """Make everything handled so far durable; after this returns, a QoS 1 message may be acknowledged.

        Dead letters first: a crash between the two commits then repeats a
        dead letter at the redelivery instead of losing it. If the outbox
        cannot commit, everything stays pending here and this raises: the
        edge acknowledges nothing and the next flush tries again.
        """
        self.report_rejections()
        self.dead_letters.flush()
        self.outbox.commit(self._batch, self.deliveries.new, self.event_keys.new)
        self._batch = self.outbox.wire.batch()
        self.deliveries.committed()
        self.event_keys.committed()
