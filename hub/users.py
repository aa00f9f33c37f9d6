"""API users and their roles; tokens are random and stored only as SHA-256 hashes.

viewer reads (personal data masked); maintenance also works alerts and orders;
operator also sends commands to devices and sees personal data whole; admin
also manages users and reads the audit log and dead letters.

`police` (警务) stands outside that line: it may read incidents and export their evidence
(audited), and nothing else, so it is no rank above or below the staff's; a route lets it in
only by naming it (`hub.api.deps.require(..., also=POLICE)`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hub.accounts import AccountsDb
from hub.statedb import Tx

Role = Literal["viewer", "maintenance", "operator", "admin", "police"]
ROLES: tuple[Role, ...] = ("viewer", "maintenance", "operator", "admin")
"""The staff's roles, each allowed what the ones before it are."""
POLICE: Role = "police"
ALL_ROLES: tuple[Role, ...] = (*ROLES, POLICE)
TITLES: dict[str, tuple[str, str]] = {
    "viewer": ("查看", "Viewer"), "maintenance": ("维保", "Maintenance"), "operator": ("值班", "Operator"),
    "admin": ("管理员", "Administrator"), POLICE: ("警务", "Police")}
"""Each role's display name (Chinese, English); the id is what is stored and sent."""
LEGACY_FILE = "users.json"
"""Where earlier versions kept the users; taken into the accounts store once, then renamed `.migrated`."""


def rank(role: str) -> int:
    """A staff role's place in the line; -1 for a role outside it (police)."""
    return ROLES.index(role) if role in ROLES else -1  # type: ignore[arg-type]


def token_hash(token: str) -> str:
    """Tokens are 32 random bytes: a plain SHA-256 is enough (nothing to brute-force)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role

    def can(self, role: str) -> bool:
        """Whether this user may do what `role` may: by rank among the staff; a role outside the line only
        what names it (police can nothing a staff role can, and no staff role is police)."""
        if role not in ROLES or self.role not in ROLES:
            return self.role == role
        return rank(self.role) >= rank(role)


class Users:
    """API users in the shared accounts store; the first admin comes from SMARTHUB_ADMIN_TOKEN.

    Nothing is cached: each check looks the token's hash up in the store (one indexed read), so a user
    another process adds, replaces or removes counts from the next request on."""

    def __init__(self, data_dir: Path, admin_token: str | None = None, database_url: str | None = None) -> None:
        self.db = AccountsDb(data_dir, database_url)
        self.db.migrate(data_dir / LEGACY_FILE, _import_legacy)
        self._admin_hash = token_hash(admin_token) if admin_token else None

    def authenticate(self, token: str) -> User | None:
        digest = token_hash(token)
        if self._admin_hash is not None and secrets.compare_digest(digest, self._admin_hash):
            return User("admin", "admin")
        rows = self.db.read("SELECT name, role FROM users WHERE token_hash = ?", (digest,))
        return User(rows[0][0], rows[0][1]) if rows else None

    def add(self, name: str, role: Role) -> str:
        """Create a user (replacing one of the same name, whose token stops working); returns the token, shown once."""
        if role not in ALL_ROLES:
            raise ValueError(f"role must be one of {', '.join(ALL_ROLES)}")
        token = secrets.token_urlsafe(32)
        self.db.write(lambda tx: tx.execute(
            "INSERT INTO users (name, role, token_hash) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
            " SET role = excluded.role, token_hash = excluded.token_hash", (name, role, token_hash(token))))
        return token

    def remove(self, name: str) -> bool:
        """Delete a user; its token stops working at once. False when there was none of that name."""
        return self.db.write(lambda tx: tx.execute("DELETE FROM users WHERE name = ?", (name,))) > 0

    def list_users(self) -> list[User]:
        return [User(name, role) for name, role in self.db.read("SELECT name, role FROM users ORDER BY name")]

    def close(self) -> None:
        self.db.close()


def _import_legacy(tx: Tx, raw: dict) -> None:  # type: ignore[type-arg]
    """`users.json` of earlier versions; a user the store already has keeps its store entry."""
    tx.executemany("INSERT OR IGNORE INTO users (name, role, token_hash) VALUES (?, ?, ?)",
                   [(u["name"], u["role"], u["token_hash"]) for u in raw.get("users", ())])
