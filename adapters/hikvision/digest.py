"""HTTP Digest (RFC 7616 / 2617, MD5, qop="auth") for the devices' pushes: what a Hikvision device configured to
log in to its HTTP listening host (`httpAuthenticationMethod` `MD5digest`) sends, checked against the HA1 the
accounts store keeps (`hub.credentials.digest_ha1`), never against a password.

Nonces are stateless and unforgeable: issue time, a random salt and an HMAC of both under a key random to this
process, valid NONCE_TTL_S (an older one with a right response is answered `stale=true`, so the device retries
with a fresh one without asking anyone for a password). Replays are refused per nonce by its nonce count (`nc`),
with a sliding window so posts that overtake each other on parallel connections are all taken once; at most
NONCES_KEPT nonces are remembered, and a nonce forgotten to keep that bound is refused as stale from then on,
never taken again. Several hub copies behind one address each have their own key: a nonce of one is new to
another, which challenges again (one more round trip per post unless the balancer keeps a device on one copy).

The functions are pure but `Nonces`, the one piece of memory (one per push endpoint, on the event loop).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from hub.credentials import DIGEST_REALM

REALM = DIGEST_REALM
NONCE_TTL_S = 300.0
"""How long a nonce is taken: a device that keeps one longer is answered stale=true and takes the next."""
NONCES_KEPT = 10_000
"""Nonces whose counts are remembered (one per device and five minutes is the usual use)."""
WINDOW = 64
"""Counts this far below a nonce's highest are still taken once (posts reordered across connections)."""
MAX_HEADER = 4096
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)\s*(?:,|$)')
_NC = re.compile(r"[0-9a-fA-F]{8}")
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
REQUIRED = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def response(ha1: str, nonce: str, nc: str, cnonce: str, qop: str, method: str, uri: str) -> str:
    """RFC 7616 §3.4.1 for qop=auth: MD5(HA1:nonce:nc:cnonce:qop:MD5(method:uri))."""
    return md5_hex(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{md5_hex(f'{method}:{uri}')}")


def parse(header: str) -> dict[str, str] | None:
    """The auth-params of an `Authorization: Digest ...` header (quoted values unquoted), or None if it is not one,
    is malformed, too long, or names a parameter twice."""
    if len(header) > MAX_HEADER:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    pos, rest = 0, rest.strip()
    while pos < len(rest):
        found = _PARAM.match(rest, pos)
        if found is None or found.end() == pos:
            return None
        key, value = found.group(1).lower(), found.group(2)
        if value.startswith('"'):
            value = value[1:-1]
            if "\\" in value:
                value = re.sub(r"\\(.)", r"\1", value)
        if key in params:
            return None
        params[key] = value
        pos = found.end()
    return params


def challenge(nonce: str, opaque: str, stale: bool = False) -> str:
    """The `WWW-Authenticate` value offering Digest."""
    return (f'Digest realm="{REALM}", qop="auth", algorithm=MD5, nonce="{nonce}", opaque="{opaque}"'
            + (", stale=true" if stale else ""))


def _window(highest: int, mask: int, nc: int) -> tuple[int, int] | None:
    """(highest, mask) once `nc` is taken, or None if it was taken before or is below the window. Bit i of the
    mask says whether count highest - i was taken."""
    if nc > highest:
        shift = nc - highest
        return nc, (((mask << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1)
    below = highest - nc
    if below >= WINDOW or mask >> below & 1:
        return None
    return highest, mask | 1 << below


class Nonces:
    """Issues nonces and remembers which counts of each were taken (bounded, see the module's docstring)."""

    def __init__(self, ttl_s: float = NONCE_TTL_S, kept: int = NONCES_KEPT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.kept, self.clock = ttl_s, kept, clock
        self._key = secrets.token_bytes(32)
        self.opaque = hmac.new(self._key, b"opaque", hashlib.sha256).hexdigest()[:32]
        self._counts: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._issued: dict[str, int] = {}
        self._floor_ms = -1
        """Nonces issued at or before this were forgotten (to keep the bound) or may have been: refused."""

    def _mac(self, stamp: str) -> str:
        return hmac.new(self._key, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> str:
        stamp = f"{int(self.clock() * 1000):x}.{secrets.token_hex(8)}"
        return f"{stamp}.{self._mac(stamp)}"

    def issued_ms(self, nonce: str) -> int | None:
        """When this process issued the nonce, or None if it did not (forged, or another process's)."""
        stamp, _, mac = nonce.rpartition(".")
        if not stamp or not hmac.compare_digest(mac.encode(), self._mac(stamp).encode()):
            return None
        try:
            return int(stamp.partition(".")[0], 16)
        except ValueError:
            return None

    def stale(self, nonce: str, issued_ms: int) -> bool:
        """Past its time, or forgotten to keep the bound (so its counts are no longer known)."""
        expired = self.clock() * 1000 - issued_ms >= self.ttl_s * 1000
        return expired or (issued_ms <= self._floor_ms and nonce not in self._counts)

    def take(self, nonce: str, issued_ms: int, nc: int) -> bool:
        """Whether count `nc` of this (verified, fresh) nonce is new; it is taken if so."""
        if self.stale(nonce, issued_ms):
            return False
        highest, mask = self._counts.get(nonce, (0, 0))
        moved = _window(highest, mask, nc)
        if moved is None:
            return False
        self._counts[nonce] = moved
        self._issued[nonce] = issued_ms
        self._counts.move_to_end(nonce)
        while len(self._counts) > self.kept:
            old, _ = self._counts.popitem(last=False)
            self._floor_ms = max(self._floor_ms, self._issued.pop(old))
        return True


@dataclass(frozen=True, slots=True)
class Opened:
    """What a Digest header opens: the kinds (none: refuse), whether to say stale=true, and why if refused."""

    kinds: tuple[str, ...] = ()
    stale: bool = False
    why: str = ""


def verify(header: str, method: str, target: str, device: str, kinds: Sequence[str], nonces: Nonces,
           keys: Callable[[], Mapping[str, str | None]]) -> Opened:
    """Check a Digest `Authorization` header of a request (`target`: its path and query as sent) for `device`
    against the HA1s `keys()` reads (kind -> HA1, None for an account without one). The store is read only for a
    well-formed answer to a nonce of ours; a count is taken only once the response is right, so nobody who saw a
    nonce can use its counts up."""
    given = parse(header)
    if given is None or any(not given.get(name) for name in REQUIRED):
        return Opened(why="a malformed Digest header")
    if given["username"] != device or given.get("userhash", "false").lower() != "false":
        return Opened(why="a Digest username that is not the device id of the URL")
    if given["realm"] != REALM or given.get("algorithm", "MD5").upper() != "MD5" or given["qop"] != "auth":
        return Opened(why='a Digest answer not for realm "smarthub", MD5, qop=auth')
    if given["uri"] != target:
        return Opened(why="a Digest uri that is not the request's")
    if not _NC.fullmatch(given["nc"]) or int(given["nc"], 16) == 0 or not _HEX32.fullmatch(given["response"]):
        return Opened(why="a malformed Digest nc or response")
    if "opaque" in given and not hmac.compare_digest(given["opaque"].encode(), nonces.opaque.encode()):
        return Opened(why="a Digest opaque this hub did not give")
    issued = nonces.issued_ms(given["nonce"])
    if issued is None:
        return Opened(why="a Digest nonce this hub did not give")
    stored = keys()
    usable = {kind: ha1 for kind, ha1 in stored.items() if ha1}
    if stored and not usable:
        return Opened(why="an account made before Digest keys were kept: run `smarthub device add` again for it"
                          " (HTTP Basic still opens it)")
    answer = given["response"].lower().encode()
    opened = tuple(kind for kind in kinds if kind in usable and hmac.compare_digest(answer, response(
        usable[kind], given["nonce"], given["nc"], given["cnonce"], "auth", method, given["uri"]).encode()))
    if not opened:
        return Opened(why="a wrong Digest response (wrong password, or no such account)")
    if nonces.stale(given["nonce"], issued):
        return Opened(stale=True, why="an expired Digest nonce (answered stale=true)")
    if not nonces.take(given["nonce"], issued, int(given["nc"], 16)):
        return Opened(why="a replayed Digest nonce count")
    return Opened(opened)
