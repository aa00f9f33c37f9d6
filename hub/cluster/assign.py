"""Which hub copy should own which partition (a site): the same answer on every copy, from the same inputs.

A partition is the unit of ingest ownership: one site's topics, one MQTT session (its own client id), so
each device's messages reach one copy, in order (rules depend on it: a fault raised then cleared, a car
stopped for 30 s). Mosquitto's `$share` groups would split a device's messages between copies per message.

Every copy runs `assign` over the live copies and the partitions it reads from the lease table, and acts
only on its own share (`hub.cluster.leases`): nobody hands work out, so nobody's death stops the handing.
Rendezvous (highest-random-weight) hashing keeps the answer stable: when a copy leaves, only its
partitions move; when one joins, it takes about 1/n of the others' and nothing else moves. A cap (each copy
floor(partitions / copies), some one more) keeps a small city balanced too (plain rendezvous over 6 sites and 3
copies can give one copy 4); with the cap a departure or an arrival moves a few more partitions than the
minimum, never a reshuffle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def weight(copy: str, partition: str) -> int:
    """The copy's rank for this partition: a stable 64-bit hash, the same in every process (not `hash`)."""
    digest = hashlib.blake2b(f"{copy}\x00{partition}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assign(partitions: Iterable[str], copies: Iterable[str]) -> dict[str, str]:
    """partition -> copy: each partition to its highest-weight copy that is not yet full (every copy ends
    with floor(partitions / copies) or one more).

    Partitions are placed in a fixed order (by name), so every copy computes the same map. With no copies,
    nothing is assigned.
    """
    live = sorted(set(copies))
    work = sorted(set(partitions))
    if not live:
        return {}
    floor, big = divmod(len(work), len(live))
    """Every copy takes `floor` partitions, and `big` of them (the first to get there) one more."""
    load = dict.fromkeys(live, 0)
    out: dict[str, str] = {}
    for partition in work:
        ranked = sorted(live, key=lambda c: weight(c, partition), reverse=True)
        owner = next(c for c in ranked if load[c] < floor or (load[c] == floor and big))
        if load[owner] == floor:
            big -= 1
        out[partition] = owner
        load[owner] += 1
    return out


@dataclass(frozen=True, slots=True)
class Lease:
    """A row of the lease table as a copy read it (times are the database's clock, in ms)."""

    partition: str
    owner: str
    epoch: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class Plan:
    """What one copy does at a tick: take these partitions, keep renewing these, give these back."""

    acquire: tuple[str, ...]
    renew: tuple[str, ...]
    release: tuple[str, ...]


def plan(me: str, desired: Mapping[str, str], leases: Mapping[str, Lease], held: Iterable[str],
         now_ms: int) -> Plan:
    """My moves, given the wanted owners (`assign`), the lease table and the partitions I run now.

    - a partition wanted by me whose lease is free, expired or mine: acquire it (a lease of mine that I do
      not run, say after a restart with the same copy id, is taken again with a new epoch);
    - one I run and am still wanted for: renew;
    - one I run but another copy is now wanted for: release it (the new owner takes it at once rather
      than waiting for the lease to expire; `leases.release` gives it up only after my last commit);
    - one I run whose lease another copy holds (my lease expired while I could not renew): release, as
      I am fenced off already.
    A partition wanted by me but held by a live lease of another copy waits: that copy releases it at its
    next tick, or its lease expires.
    """
    running = set(held)
    acquire, renew, release = [], [], []
    for partition in sorted(running):
        lease = leases.get(partition)
        mine = lease is not None and lease.owner == me and lease.expires_ms > now_ms
        if not mine or desired.get(partition) != me:
            release.append(partition)
        else:
            renew.append(partition)
    for partition, owner in sorted(desired.items()):
        if owner != me or partition in running:
            continue
        lease = leases.get(partition)
        if lease is None or lease.expires_ms <= now_ms or lease.owner == me:
            acquire.append(partition)
    return Plan(tuple(acquire), tuple(renew), tuple(release))
