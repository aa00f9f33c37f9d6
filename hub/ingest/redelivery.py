"""Recognise what the broker or a device sends again, also across a hub crash or restart.

The hub acknowledges a QoS 1 message only after committing it, so a crash
between the commit and the PUBACK makes the broker send it again, flagged DUP,
with its original packet id (MQTT 3.1.1 section 4.4). Two keys catch repeats,
both kept in the outbox's SQLite file in the same transaction as the points
they belong to (`Outbox.put`), so what is committed and what is remembered
never disagree:

- **Deliveries**: every QoS 1 message's (packet id, CRC-32 of topic and
  payload). A DUP message whose key is among the last `DELIVERIES_KEPT` (`hub.redelivery_window`) is a
  redelivery of something already committed: acknowledged and dropped. Only
  DUP messages are checked, so a device that sends the same bytes twice (a
  door that stays closed) is never mistaken for a redelivery.
- **Event ids**: an event with an `id` (contract section 2) is stored once
  per (device, id, phase, seq, ts) for `EVENT_KEYS_KEPT_MS`, however it came
  again (a device's own retry, a broker replaying its queue after a crash).

Telemetry carrying `ts` needs neither: its point time is the device's, so a
repeat overwrites itself in the store.
"""

from __future__ import annotations

import hashlib
import zlib
from array import array
from collections import deque
from collections.abc import Hashable, Iterable

from hub.redelivery_window import DELIVERIES_KEPT

EVENT_KEYS_IN_MEMORY = 200_000
TOPIC_CRC_CACHE = 200_000
FORGET_SET_AFTER_COMMITS = 2_000
"""The set built for DUP checks (about 20 MB for a full window) is dropped after this many commits
without a DUP (some seconds of traffic): redeliveries come in a burst right after a reconnect."""


class Deliveries:
    """Keys of recently committed QoS 1 deliveries: checked for DUP messages, persisted by the outbox.

    Noting a key is one array append (the hot path: every QoS 1 message); the
    set that answers `seen` is brought up to date only when a DUP arrives, which
    happens only after a reconnect.
    """

    def __init__(self, kept: int = DELIVERIES_KEPT) -> None:
        self.kept = kept
        self.new = array("Q")
        """Keys noted since the last commit; `Outbox.put` stores them, then `committed()` files them."""
        self._batches: deque[array] = deque()
        """Committed keys, one array per commit, oldest first; at least `kept` keys in all."""
        self._first = 0
        """Absolute index of `_batches[0]`."""
        self._count = 0
        self._known: set[int] = set()
        self._known_upto = 0
        """`_known` holds the batches from `_first` up to this absolute index."""
        self._evicted: list[array] = []
        """Batches dropped from the window whose keys are still in `_known`."""
        self._commits_unchecked = 0
        self._topic_crc: dict[str, int] = {}

    def key(self, topic: str, packet_id: int, payload: bytes) -> int:
        crc = self._topic_crc.get(topic)
        if crc is None:
            crc = zlib.crc32(topic.encode("utf-8", "surrogateescape"))
            if len(self._topic_crc) < TOPIC_CRC_CACHE:
                self._topic_crc[topic] = crc
        return packet_id << 32 | zlib.crc32(payload, crc)

    def seen(self, key: int) -> bool:
        """True if `key` was committed within the window, or noted and waiting for the commit."""
        if key in self.new:
            return True
        self._commits_unchecked = 0
        self._catch_up()
        return key in self._known

    def _catch_up(self) -> None:
        if self._known_upto < self._first:  # stale beyond the window: start afresh
            self._known.clear()
            self._evicted.clear()
            self._known_upto = self._first
        for batch in self._evicted:
            self._known.difference_update(batch)
        self._evicted.clear()
        end = self._first + len(self._batches)
        for index in range(self._known_upto, end):
            self._known.update(self._batches[index - self._first])
        self._known_upto = end

    def committed(self) -> None:
        self._commits_unchecked += 1
        if self._commits_unchecked > FORGET_SET_AFTER_COMMITS and self._known_upto >= 0:
            self._known, self._evicted, self._known_upto = set(), [], -1  # rebuilt at the next DUP
        if not self.new:
            return
        self._batches.append(self.new)
        self._count += len(self.new)
        self.new = array("Q")
        while self._count - len(self._batches[0]) >= self.kept:
            oldest = self._batches.popleft()
            self._count -= len(oldest)
            if self._first < self._known_upto:
                self._evicted.append(oldest)
            self._first += 1

    def load(self, keys: array) -> None:
        """Keys from the outbox file at start, oldest first."""
        self.new = keys
        self.committed()

    def __len__(self) -> int:
        return self._count + len(self.new)


REPEATS_KEPT = 200_000


class RecentKeys:
    """A bounded set of 64-bit integer keys: the last `capacity` keys at least, 2 x `capacity` at most.

    Two generations, each an open-addressing hash table (linear probing) in one preallocated
    `array("q")` of at least 2 x `capacity` slots: new keys go into the young one; when it holds
    `capacity`, the old one is zeroed in place and becomes the young one. So its memory is taken once,
    at construction, and never changes: 16 bytes a slot, 8 MiB for 200,000 keys, against 34-40 MiB
    for the same keys in two Python sets of ints (about 80 bytes a key with the int objects, reached
    only as the sets fill: a soak's RSS kept rising for as long as the event keys took to fill).
    Slot value 0 means empty, so the key 0 is kept as `ZERO_KEY` (a stand-in that can only make one
    key in 2**64 be taken for another).
    """

    ZERO_KEY = -1

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        slots = 1 << max(4, (2 * capacity - 1).bit_length())
        self._mask = slots - 1
        self._young = array("q", bytes(8 * slots))
        self._old = array("q", bytes(8 * slots))
        self._young_count = 0
        self._old_count = 0

    def add(self, key: int) -> bool:
        """Remember `key`; False if it was already known (a lookup does not make it newer)."""
        key = key or self.ZERO_KEY
        mask = self._mask
        for table in (self._young, self._old):
            i = key & mask
            while probe := table[i]:
                if probe == key:
                    return False
                i = (i + 1) & mask
        if self._young_count >= self.capacity:
            self._turn()
        young = self._young
        i = key & mask
        while young[i]:
            i = (i + 1) & mask
        young[i] = key
        self._young_count += 1
        return True

    def _turn(self) -> None:
        """The young generation becomes the old one; the old one's table, zeroed, the young one."""
        table = self._old
        for start in range(0, len(table), len(_ZEROS)):
            table[start:start + len(_ZEROS)] = _ZEROS[:len(table) - start]
        self._old, self._young = self._young, table
        self._old_count, self._young_count = self._young_count, 0

    def __len__(self) -> int:
        return self._young_count + self._old_count


_ZEROS = array("q", bytes(8 * 4096))
"""Zeroes a table in place, 4,096 slots at a time (no table-sized temporary)."""


class Repeats:
    """Messages that carry their own `ts` or `seq`, seen again with the same bytes on the same topic.

    Such a copy is the same observation sent again: a device's own retry, or a
    publisher resending what the broker had already passed on when it lost the
    broker's PUBACK (the broker forwards it as a new message, without DUP). Its
    points would land on the same times only while the series clock still
    remembers the first copy, so the copy is dropped here. Messages with
    neither `ts` nor `seq` are never checked: identical bytes are then two
    observations. Kept in memory (Python's `hash`, per process) for the last
    `REPEATS_KEPT` such messages.
    """

    def __init__(self, kept: int = REPEATS_KEPT) -> None:
        self._recent = RecentKeys(kept)

    def seen(self, topic: str, payload: bytes) -> bool:
        return not self._recent.add(hash((topic, payload)))


def event_digest(key: Hashable) -> int:
    """A 64-bit digest of an event key, the same in every process (unlike `hash`)."""
    return int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "little") >> 1
    # >> 1: SQLite integers are signed 64-bit


class EventKeys:
    """Recently stored event keys, newest kept in memory; new ones wait for the outbox commit."""

    def __init__(self, capacity: int = EVENT_KEYS_IN_MEMORY) -> None:
        self.capacity = capacity
        self._recent = RecentKeys(capacity)
        self.new: list[tuple[int, int]] = []
        """(digest, received ms) noted since the last commit"""

    def seen(self, key: Hashable, received_ms: int) -> bool:
        """True if `key` was stored before; otherwise remember it and return False."""
        digest = event_digest(key)
        if not self._recent.add(digest):
            return True
        self.new.append((digest, received_ms))
        return False

    def committed(self) -> None:
        self.new = []

    def load(self, digests: Iterable[int]) -> None:
        for digest in digests:
            self._recent.add(digest)

    def __len__(self) -> int:
        return len(self._recent)
