"""Users, roles and credentials (issue 7): passwords hashed with Argon2, API tokens stored as
SHA-256 hashes, sessions held by the server (the signed HttpOnly cookie carries only a random
session id), a lock-out per user name and address after repeated failed logins.

Roles: `dcc` and `panel` see everything (the panel also the confidential throttling report);
`party` sees its own records named and every other party anonymised as in the league tables.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

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
    """The users, for `users list` (read-only: a store nobody was ever added to has none)."""
    if not store.has_table("users"):
        return []
    return store.rows("SELECT username, role, party_id, created_at FROM users ORDER BY username")


def _fingerprint(r: dict) -> str:
    """What a session rests on: a changed password, role or party (or a re-added user) ends it."""
    parts = (r["username"], r["role"], r["party_id"], r["password_hash"], r["created_at"])
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


class Authenticator:
    """Checks passwords and tokens against the users table, and holds the server-side sessions.

    `source` is a store or anything with `store()` and `generation` (engine/serving.py's
    Snapshots): the users are read again whenever a writer publishes, so `users add` takes
    effect, and ends that user's sessions, while the server runs.

    Lock-out is per user name *and* client address (five failures lock that pair, the lock
    doubling at each repeat), so nobody can lock another person out from elsewhere; one
    address failing twenty times, whatever the names, is blocked too. An unknown name costs
    one Argon2 verification like a known one, so timing does not tell names apart.
    """

    MAX_FAILURES = 5
    LOCK_SECONDS = 300
    MAX_LOCK_SECONDS = 24 * 3600
    # Per client address, whatever user names it tries: stops spraying many accounts.
    MAX_CLIENT_FAILURES = 20
    SESSION_SECONDS = 8 * 3600
    _DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

    def __init__(self, source: Any):
        self._source = source
        self._generation: int | None = None
        self._users: dict[str, dict] = {}
        self._by_token: dict[str, dict] = {}
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._locks: dict[tuple[str, str], tuple[float, int]] = {}  # until, how many locks so far
        self._client_failures: dict[str, list[float]] = {}
        self._sessions: dict[str, tuple[str, str, float]] = {}  # sid: user, fingerprint, expiry
        self._mutex = threading.Lock()
        self._refresh()

    def _refresh(self) -> None:
        # store() first: it is what notices a newly published snapshot and bumps generation.
        store = self._source.store() if hasattr(self._source, "store") else self._source
        gen = getattr(self._source, "generation", 0)
        if gen == self._generation:
            return
        try:
            rows = store.rows("SELECT * FROM users")
        except Exception:  # noqa: BLE001 - no users table yet: nobody can log in
            rows = []
        self._users = {r["username"]: {**r, "fingerprint": _fingerprint(r)} for r in rows}
        self._by_token = {r["token_sha256"]: r for r in self._users.values() if r["token_sha256"]}
        self._generation = gen

    def _user(self, r: dict) -> User:
        return User(r["username"], r["role"], r["party_id"])

    # --- lock-out -----------------------------------------------------------------------------

    def locked(self, username: str, client: str = "?") -> bool:
        until, _ = self._locks.get((username, client), (0.0, 0))
        return time.monotonic() < until

    def client_limited(self, client: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self._client_failures.get(client, []) if now - t < self.LOCK_SECONDS]
        self._client_failures[client] = recent
        return len(recent) >= self.MAX_CLIENT_FAILURES

    def _failed(self, username: str, client: str) -> None:
        now, key = time.monotonic(), (username, client)
        with self._mutex:
            recent = [t for t in self._failures.get(key, []) if now - t < self.LOCK_SECONDS] + [now]
            self._client_failures.setdefault(client, []).append(now)
            if len(recent) >= self.MAX_FAILURES:
                _, times = self._locks.get(key, (0.0, 0))
                seconds = min(self.LOCK_SECONDS * 2**times, self.MAX_LOCK_SECONDS)
                self._locks[key] = (now + seconds, times + 1)
                recent = []
            self._failures[key] = recent

    def login(self, username: str, password: str, client: str = "?") -> User | None:
        if self.locked(username, client):
            return None
        self._refresh()
        r = self._users.get(username)
        try:
            # The same work for an unknown name as for a known one: no timing difference.
            if _hasher.verify(r["password_hash"] if r else self._DUMMY_HASH, password) and r is not None:
                with self._mutex:
                    self._failures.pop((username, client), None)
                    self._locks.pop((username, client), None)
                return self._user(r)
        except (VerificationError, InvalidHashError):
            pass
        self._failed(username, client)
        return None

    # --- sessions -----------------------------------------------------------------------------

    def open_session(self, user: User) -> str:
        """A new server-side session for `user`; the cookie carries only its random id."""
        self._refresh()
        sid = secrets.token_urlsafe(32)
        with self._mutex:
            now = time.monotonic()
            self._sessions = {k: v for k, v in self._sessions.items() if v[2] > now}
            fp = self._users[user.username]["fingerprint"]
            self._sessions[sid] = (user.username, fp, now + self.SESSION_SECONDS)
        return sid

    def session_user(self, sid: str | None) -> User | None:
        """The user of a live session: none after logout, expiry, a restart of the server,
        or a change to the user (password, role, party, removal)."""
        if not sid:
            return None
        self._refresh()
        got = self._sessions.get(sid)
        if got is None:
            return None
        name, fp, expiry = got
        r = self._users.get(name)
        if r is None or r["fingerprint"] != fp or time.monotonic() >= expiry:
            self.close_session(sid)
            return None
        return self._user(r)

    def close_session(self, sid: str | None) -> None:
        with self._mutex:
            self._sessions.pop(sid or "", None)

    # --- API tokens ---------------------------------------------------------------------------

    def by_token(self, token: str) -> User | None:
        self._refresh()
        h = _token_hash(token)
        found = None
        for known, r in self._by_token.items():
            if hmac.compare_digest(known, h):
                found = r
        return self._user(found) if found else None
