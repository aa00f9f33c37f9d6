"""Per-device MQTT credentials and the Mosquitto files that enforce them.

`smarthub device add SITE KIND DEVICE` makes a random password, shows it once,
and keeps only its hash (in the shared accounts store, hub/accounts.py), already in Mosquitto's own password-file format
(`$7$`: PBKDF2-HMAC-SHA512), so `smarthub broker-files DIR` can write `passwd`
and `acl` for the broker without ever storing a password. The ACL lets a device
publish only its own telemetry, event, state and reply, and read only its own
cmd; the hub reads everything under the root and writes commands and alerts. A vendor system that
publishes on the broker itself (Frigate, for the Frigate adapter) gets an account that writes only its
own topics (`vendor_rules`).

Beside the hash, each account made by this version keeps its HTTP Digest key, HA1 = MD5(device:smarthub:password)
(`digest_ha1`), for devices that can only log in to an HTTP host with Digest (Hikvision's push). An HA1 opens
Digest logins in the realm "smarthub" for that one device id, and nothing else: the passwords are random
144-bit tokens, so it cannot be turned back into the password (no dictionary holds them, no search finds one),
and the password stays what the broker, Basic and OCPP check, against the PBKDF2 hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hub.accounts import AccountsDb
from hub.config import parse_mqtt_url
from hub.statedb import Tx

MOSQUITTO_ITERATIONS = 101
"""What mosquitto_passwd 2.0 uses for `$7$` hashes."""
DEVICE_WRITES = ("telemetry", "event", "state", "reply")
LOGIN_TTL_S = 60.0
"""How long a verified login is taken again without hashing (as long as no account changed meanwhile)."""
LOGINS_KEPT = 10_000
"""Verified logins remembered at most (one per device and kinds asked; the oldest go first)."""
DIGEST_REALM = "smarthub"
"""The one HTTP Digest realm of the hub's device logins: it is inside every kept HA1, so it never changes."""
LEGACY_FILE = "credentials.json"
"""Where earlier versions kept the accounts; taken into the accounts store once, then renamed `.migrated`."""


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """A password hash line field as `mosquitto_passwd` writes it (Mosquitto 2.0, `$7$`)."""
    salt = salt or os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, MOSQUITTO_ITERATIONS, 64)
    return f"$7${MOSQUITTO_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify(password: str, stored: str) -> bool:
    """Whether `password` matches a `mosquitto_hash` line field; anything not of that form matches nothing."""
    try:
        _, scheme, iterations, salt, digest = stored.split("$")
        if scheme != "7":
            return False
        given = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations), 64)
        return hmac.compare_digest(given, base64.b64decode(digest))
    except ValueError:  # also binascii.Error: a hash that is not ours
        return False


def digest_ha1(user: str, password: str, realm: str = DIGEST_REALM) -> str:
    """RFC 7616's HA1 for MD5: MD5(user:realm:password) in hex; what Digest verification needs of a password."""
    return hashlib.md5(f"{user}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()


def username(site: str, kind: str, device: str) -> str:
    return f"{site}.{kind}.{device}"


@dataclass(frozen=True, slots=True)
class DeviceAccount:
    site: str
    kind: str
    device: str
    hash: str

    @property
    def username(self) -> str:
        return username(self.site, self.kind, self.device)


class VerifiedLogins:
    """Logins verified recently, so a device that authenticates every request (an HTTP push, one post a second
    or more) costs a keyed digest, not two store reads and a PBKDF2 hash each time.

    No password is kept: an entry holds an HMAC-SHA256 of the password under a key random to this process, compared
    in constant time. An entry is taken only while its `version` (the accounts store's) is unchanged and for
    `ttl_s`: a rotated password or a deleted account stops the old one at once. A wrong password is never
    cached; it always pays the full check."""

    def __init__(self, ttl_s: float = LOGIN_TTL_S, kept: int = LOGINS_KEPT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.kept = kept
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[Hashable, tuple[bytes, float, Hashable, tuple[str, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def _digest(self, login: Hashable, password: str) -> bytes:
        return hmac.new(self._key, repr(login).encode() + b"\x00" + password.encode(), hashlib.sha256).digest()

    def get(self, login: Hashable, password: str, version: Hashable) -> tuple[str, ...] | None:
        """What `put` kept for this login and password, or None (unknown, expired, changed or another password)."""
        with self._lock:
            entry = self._entries.get(login)
        if entry is None:
            return None
        digest, expires, seen, value = entry
        if seen != version or self.clock() >= expires:
            with self._lock:
                self._entries.pop(login, None)
            return None
        return value if hmac.compare_digest(digest, self._digest(login, password)) else None

    def put(self, login: Hashable, password: str, version: Hashable, value: tuple[str, ...]) -> None:
        entry = (self._digest(login, password), self.clock() + self.ttl_s, version, value)
        with self._lock:
            self._entries[login] = entry
            self._entries.move_to_end(login)
            while len(self._entries) > self.kept:
                self._entries.popitem(last=False)


class Credentials:
    """The device accounts (hashes only), in the shared accounts store beside the API users.

    `devices` reads the store each time, so `broker-files` and the running hub see every account
    `device add` wrote, from any process."""

    def __init__(self, data_dir: Path, database_url: str | None = None) -> None:
        self.db = AccountsDb(data_dir, database_url)
        self.db.migrate(data_dir / LEGACY_FILE, _import_legacy)
        self.logins = VerifiedLogins()
        self._changes = 0
        """Changes made through this connection: SQLite's data_version counts only other connections'."""

    @property
    def devices(self) -> list[DeviceAccount]:
        rows = self.db.read("SELECT site, kind, device, hash FROM devices ORDER BY site, kind, device")
        return [DeviceAccount(*row) for row in rows]

    def check(self, site: str, kind: str, device: str, password: str) -> bool:
        """Whether `password` is this device's (for protocols the hub authenticates itself, not the broker)."""
        rows = self.db.read("SELECT hash FROM devices WHERE site = ? AND kind = ? AND device = ?", (site, kind, device))
        return bool(rows) and verify(password, rows[0][0])

    def version(self) -> tuple[int, int]:
        """Moves whenever any account changes, from this process or another (one pragma, no table read)."""
        return self.db.changed(), self._changes

    def opens(self, site: str, device: str, password: str, kinds: Sequence[str]) -> list[str]:
        """The kinds among `kinds` whose account for this device `password` opens (none: refuse). A login opened
        within LOGIN_TTL_S, with no account changed since, is not hashed again (`VerifiedLogins`)."""
        login, version = (site, device, tuple(kinds)), self.version()
        known = self.logins.get(login, password, version)
        if known is not None:
            return list(known)
        opened = [kind for kind in kinds if self.check(site, kind, device, password)]
        if opened:
            self.logins.put(login, password, version, tuple(opened))
        return opened

    def digest_keys(self, site: str, device: str, kinds: Sequence[str]) -> dict[str, str | None]:
        """kind -> HA1 (`digest_ha1`) of this device's accounts among `kinds`; None for an account made before
        Digest keys were kept (Basic still opens it). One indexed read and no hashing: a Digest check costs a few
        MD5s, so it does not go through `VerifiedLogins`, and no key is kept in memory past the check."""
        rows = self.db.read("SELECT kind, ha1 FROM devices WHERE site = ? AND device = ?", (site, device))
        return {kind: ha1 for kind, ha1 in rows if kind in kinds}

    def add(self, site: str, kind: str, device: str) -> str:
        """Create (or replace) a device's account; returns its new password, shown once. Its PBKDF2 hash and
        its Digest HA1 are kept, never the password."""
        password = secrets.token_urlsafe(18)
        hashed, ha1 = mosquitto_hash(password), digest_ha1(device, password)
        self.db.write(lambda tx: tx.execute(
            "INSERT INTO devices (site, kind, device, hash, ha1) VALUES (?, ?, ?, ?, ?) ON CONFLICT"
            " (site, kind, device) DO UPDATE SET hash = excluded.hash, ha1 = excluded.ha1",
            (site, kind, device, hashed, ha1)))
        self._changes += 1
        return password

    @property
    def vendors(self) -> dict[str, str]:
        """Vendor systems' broker logins (Frigate's) -> their password hashes."""
        return dict(self.db.read("SELECT login, hash FROM vendors ORDER BY login"))

    def add_vendor(self, login: str) -> str:
        """Create (or replace) a vendor system's broker account; returns its new password, shown once."""
        password = secrets.token_urlsafe(18)
        hashed = mosquitto_hash(password)
        self.db.write(lambda tx: tx.execute(
            "INSERT INTO vendors (login, hash) VALUES (?, ?) ON CONFLICT (login) DO UPDATE SET"
            " hash = excluded.hash", (login, hashed)))
        return password

    def close(self) -> None:
        self.db.close()


def _import_legacy(tx: Tx, raw: dict) -> None:  # type: ignore[type-arg]
    """`credentials.json` of earlier versions; an account the store already has keeps its store entry."""
    tx.executemany("INSERT OR IGNORE INTO devices (site, kind, device, hash) VALUES (?, ?, ?, ?)",
                   [(d["site"], d["kind"], d["device"], d["hash"]) for d in raw.get("devices", ())])


Rule = tuple[str, str]
"""(access, topic filter) as a Mosquitto acl line `topic ACCESS FILTER`; access is read, write or readwrite."""


def hub_rules(root: str, vendor_reads: Sequence[str] = ()) -> list[Rule]:
    """The hub reads everything under the root and writes commands and alerts; it also reads the vendor topics
    its adapters consume (`frigate/#`, say: hub/adapters.py), and only reads them."""
    return [("read", f"{root}/#"), ("write", f"{root}/+/+/+/cmd"), ("write", f"{root}/+/alerts/#"),
            *(("read", f) for f in vendor_reads)]


def device_rules(root: str, site: str, kind: str, device: str) -> list[Rule]:
    """A device publishes only its own telemetry, event, state and reply, and reads only its own cmd."""
    base = f"{root}/{site}/{kind}/{device}"
    return [*(("write", f"{base}/{c}") for c in DEVICE_WRITES), ("read", f"{base}/cmd")]


def vendor_rules(writes: Sequence[str]) -> list[Rule]:
    """A vendor system that publishes on the broker (Frigate: `frigate/#`) writes its own topics and reads
    nothing: not the contract's root, and not even its own topics (its `.../set` commands included)."""
    return [("write", f) for f in writes]


def observer_rules(root: str) -> list[Rule]:
    """Read-only: someone watching the traffic (the demo's printed mosquitto_sub line) can forge nothing."""
    return [("read", f"{root}/#")]


def acl_text(rules: dict[str, list[Rule]]) -> str:
    """Mosquitto acl-file blocks, one per user."""
    return "".join(f"user {user}\n" + "".join(f"topic {a} {f}\n" for a, f in user_rules) + "\n"
                   for user, user_rules in rules.items())


def broker_files(accounts: list[DeviceAccount], root: str, mqtt_url: str, vendor_reads: Sequence[str] = (),
                 vendors: Mapping[str, tuple[str, Sequence[str]]] | None = None) -> tuple[str, str]:
    """(passwd, acl) file contents for Mosquitto: every device plus the hub's own account (which may also read
    `vendor_reads`, the adapters' topic filters), and each vendor system that publishes on the broker itself:
    `vendors` is login -> (password hash, the filters it may write)."""
    hub = parse_mqtt_url(mqtt_url)
    if not hub.username or not hub.password:
        raise ValueError("SMARTHUB_MQTT_URL must carry the hub's user:password for the broker files")
    vendors = vendors or {}
    if hub.username in vendors:
        raise ValueError(f"the hub's broker login {hub.username!r} is also a vendor account's")
    passwd = [f"{hub.username}:{mosquitto_hash(hub.password)}"]
    rules = {hub.username: hub_rules(root, vendor_reads)}
    for login, (hashed, writes) in sorted(vendors.items()):
        passwd.append(f"{login}:{hashed}")
        rules[login] = vendor_rules(writes)
    for account in sorted(accounts, key=lambda a: a.username):
        passwd.append(f"{account.username}:{account.hash}")
        rules[account.username] = device_rules(root, account.site, account.kind, account.device)
    header = (f"# Written by smarthub broker-files: the hub, the vendor systems that publish here, then one block"
              f" per device. Topic root: {root}\n")
    return "\n".join(passwd) + "\n", header + acl_text(rules)
