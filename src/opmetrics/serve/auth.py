"""Users, roles and credentials (issue 7): passwords hashed with Argon2, API tokens stored as
SHA-256 hashes, sessions in signed HttpOnly cookies, a lock-out after repeated failed logins.

Roles: `dcc` and `panel` see everything (the panel also the confidential throttling report);
`party` sees its own records named and every other party anonymised as in the league tables.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from opmetrics.engine.store import Store

Role = Literal["dcc", "panel", "party"]
ROLES: tuple[Role, ...] = ("dcc", "panel", "party")
_hasher = PasswordHasher()

_DDL = """
CREATE TABLE IF NOT EXISTS users (
    username VARCHAR PRIMARY KEY,
    role VARCHAR NOT NULL,
    party_id VARCHAR,
    password_hash VARCHAR NOT NULL,
    token_sha256 VARCHAR,
    created_at TIMESTAMP NOT NULL
)"""


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    party_id: str | None

    @property
    def sees_all(self) -> bool:
        return self.role in ("dcc", "panel")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(store: Store, username: str, role: str, password: str, party_id: str | None = None) -> str:
    """Create or replace a user; returns a new API token (shown once, stored hashed)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == "party" and not party_id:
        raise ValueError("a party user needs --party (the SEC Party id it belongs to)")
    if role != "party" and party_id:
        raise ValueError(f"a {role} user sees every party; do not give --party")
    if len(password) < 12:
        raise ValueError("passwords need at least 12 characters")
    token = secrets.token_urlsafe(32)
    store.con.execute(_DDL)
    store.con.execute("DELETE FROM users WHERE username = ?", [username])
    store.con.execute(
        "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
        [
            username,
            role,
            party_id,
            _hasher.hash(password),
            _token_hash(token),
            dt.datetime.now(dt.UTC).replace(tzinfo=None),
        ],
    )
    return token


def list_users(store: Store) -> list[dict]:
    store.con.execute(_DDL) if not store.read_only else None
    return store.rows("SELECT username, role, party_id, created_at FROM users ORDER BY username")


class Authenticator:
    """Checks passwords and tokens against the users table (read at start-up)."""

    MAX_FAILURES = 5
    LOCK_SECONDS = 300
    # Per client address, whatever user names it tries: stops spraying many accounts.
    MAX_CLIENT_FAILURES = 20

    def __init__(self, store: Store):
        try:
            rows = store.rows("SELECT * FROM users")
        except Exception:  # noqa: BLE001 - no users table yet: nobody can log in
            rows = []
        self._users = {r["username"]: r for r in rows}
        self._by_token = {r["token_sha256"]: r for r in rows if r["token_sha256"]}
        self._failures: dict[str, list[float]] = {}
        self._client_failures: dict[str, list[float]] = {}

    def _user(self, r: dict) -> User:
        return User(r["username"], r["role"], r["party_id"])

    def locked(self, username: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self._failures.get(username, []) if now - t < self.LOCK_SECONDS]
        self._failures[username] = recent
        return len(recent) >= self.MAX_FAILURES

    def client_limited(self, client: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self._client_failures.get(client, []) if now - t < self.LOCK_SECONDS]
        self._client_failures[client] = recent
        return len(recent) >= self.MAX_CLIENT_FAILURES

    def login(self, username: str, password: str, client: str = "?") -> User | None:
        if self.locked(username):
            return None
        r = self._users.get(username)
        try:
            if r is not None and _hasher.verify(r["password_hash"], password):
                self._failures.pop(username, None)
                return self._user(r)
        except (VerificationError, InvalidHashError):
            pass
        self._failures.setdefault(username, []).append(time.monotonic())
        self._client_failures.setdefault(client, []).append(time.monotonic())
        return None

    def by_token(self, token: str) -> User | None:
        h = _token_hash(token)
        for known, r in self._by_token.items():
            if hmac.compare_digest(known, h):
                return self._user(r)
        return None

    def by_name(self, username: str) -> User | None:
        r = self._users.get(username)
        return self._user(r) if r else None
