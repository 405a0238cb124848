"""Console sessions and CSRF tokens: pure logic with an injectable clock.

Failed sign-ins go through the gateway's failed-authentication throttle
(limits/auth_throttle.py), per source and per principal, like the admin API.

Sessions are server-side, keyed by the SHA-256 of a random 256-bit token. The
cookie carries only that token, so it reveals nothing (the admin key never
leaves the login form), logout really ends the session, and a leaked dump holds
no replayable cookie values. :class:`SessionStore` is the in-process logic;
console/session_backends.py keeps the same records in Redis or the store so
that every replica serves every session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]

IDLE_TIMEOUT_S = 60 * 60
ABSOLUTE_TIMEOUT_S = 12 * 60 * 60
MAX_SESSIONS = 10_000


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_secret(a: str, b: str) -> bool:
    """Constant-time comparison of two strings (any characters)."""
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class Principal:
    """Who signed in: the configured admin key (``bootstrap``) or a named admin key with a role."""

    kind: str  # "admin_key" | "virtual_key"
    label: str
    key_id: str | None = None
    fingerprint: str | None = None  # HMAC of the admin key, to notice it changed
    role: str = "admin"  # admin | operator | viewer | finance (gateway/authz.py)
    name: str = "bootstrap"  # the principal's name, as the audit log records it


@dataclass(slots=True)
class Session:
    principal: Principal
    csrf: str
    created: float
    seen: float = field(default=0.0)


class SessionStore:
    """In-memory sessions with idle and absolute expiry, bounded in number."""

    def __init__(
        self,
        clock: Clock = time.monotonic,
        *,
        idle_s: float = IDLE_TIMEOUT_S,
        absolute_s: float = ABSOLUTE_TIMEOUT_S,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.clock = clock
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, principal: Principal) -> tuple[str, Session]:
        """A new session; returns the cookie token (kept only as a digest here)."""
        now = self.clock()
        token = secrets.token_urlsafe(32)
        session = Session(principal, secrets.token_urlsafe(32), created=now, seen=now)
        self._sessions[_digest(token)] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)  # the oldest sign-in goes first
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session for a cookie token, refreshing its idle timer."""
        if not token:
            return None
        key = _digest(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self.clock()
        if now - session.seen > self.idle_s or now - session.created > self.absolute_s:
            del self._sessions[key]
            return None
        session.seen = now
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._sessions.pop(_digest(token), None)


class LoginCsrf:
    """CSRF for the login form, before any session exists: a signed double submit.

    The login page sets a random nonce in a SameSite=Strict cookie and puts
    HMAC(secret, nonce) in the form; a cross-site page can neither read the
    cookie nor compute the MAC, so it cannot forge a valid pair.
    """

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def issue(self) -> tuple[str, str]:
        """(nonce for the cookie, token for the form)."""
        nonce = secrets.token_urlsafe(24)
        return nonce, self.token_for(nonce)

    def token_for(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()

    def check(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        return same_secret(self.token_for(nonce), token)

    def fingerprint(self, admin_key: str) -> str:
        """A per-process MAC of the admin key: sessions notice when it is rotated."""
        return hmac.new(self._secret, b"admin:" + admin_key.encode(), hashlib.sha256).hexdigest()


def check_session_csrf(session: Session, token: str | None) -> bool:
    return bool(token) and same_secret(session.csrf, token or "")
