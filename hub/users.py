"""API users and their roles; tokens are random and stored only as SHA-256 hashes.

viewer reads (personal data masked); maintenance also works alerts and orders;
operator also sends commands to devices and sees personal data whole; admin
also manages users and reads the audit log and dead letters.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson

Role = Literal["viewer", "maintenance", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "maintenance", "operator", "admin")


def rank(role: str) -> int:
    return ROLES.index(role)  # type: ignore[arg-type]


def token_hash(token: str) -> str:
    """Tokens are 32 random bytes: a plain SHA-256 is enough (nothing to brute-force)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role

    def can(self, role: str) -> bool:
        return rank(self.role) >= rank(role)


class Users:
    """`users.json` under the data directory; the first admin comes from SMARTHUB_ADMIN_TOKEN."""

    def __init__(self, path: Path, admin_token: str | None = None) -> None:
        self.path = path
        raw = orjson.loads(path.read_bytes()) if path.exists() else {"users": []}
        self._by_hash: dict[str, User] = {u["token_hash"]: User(u["name"], u["role"]) for u in raw["users"]}
        self._admin_hash = token_hash(admin_token) if admin_token else None

    def authenticate(self, token: str) -> User | None:
        digest = token_hash(token)
        if self._admin_hash is not None and secrets.compare_digest(digest, self._admin_hash):
            return User("admin", "admin")
        return self._by_hash.get(digest)

    def add(self, name: str, role: Role) -> str:
        """Create a user (replacing one of the same name); returns the token, shown once."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        token = secrets.token_urlsafe(32)
        self._by_hash = {h: u for h, u in self._by_hash.items() if u.name != name}
        self._by_hash[token_hash(token)] = User(name, role)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"users": [{"name": u.name, "role": u.role, "token_hash": h}
                                                for h, u in self._by_hash.items()]}, option=orjson.OPT_INDENT_2))
        tmp.chmod(0o600)
        tmp.replace(self.path)
        return token
