"""Where console sessions and the console's signing secret live, so any replica serves them.

With Redis configured, sessions are Redis keys that expire on their own; without
it they are rows in the store (SQLite or PostgreSQL), which every replica on the
same store shares and which survive a restart. Either way only the SHA-256 of
the cookie token is kept, and the secret that signs login-form CSRF tokens (and
fingerprints the admin key) is created once by whichever replica comes first
and read by all, so a form served by one replica can be posted to another.
``MemorySessions`` (one process, nothing shared) is for tests.

Times are wall-clock seconds here (every replica must agree on them), unlike
:class:`~pilothouse.console.auth.SessionStore`'s monotonic clock.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.console.auth import (
    ABSOLUTE_TIMEOUT_S,
    IDLE_TIMEOUT_S,
    Principal,
    Session,
    SessionStore,
    _digest,
)
from pilothouse.console.tables import console_sessions
from pilothouse.store.shared_secrets import shared_secret

TOUCH_EVERY_S = 60.0  # a page view refreshes the idle timer at most this often (store writes)


class SessionBackend(Protocol):
    async def create(self, principal: Principal) -> tuple[str, Session]: ...

    async def get(self, token: str | None) -> Session | None: ...

    async def end(self, token: str | None) -> None: ...

    async def secret(self) -> bytes: ...


def _encode(session: Session) -> bytes:
    return orjson.dumps(
        {
            "principal": asdict(session.principal),
            "csrf": session.csrf,
            "created": session.created,
            "seen": session.seen,
        }
    )


def _decode(raw: bytes | str) -> Session:
    data: dict[str, Any] = orjson.loads(raw)
    return Session(Principal(**data["principal"]), data["csrf"], data["created"], data["seen"])


def _new_session(principal: Principal, now: float) -> tuple[str, Session]:
    return secrets.token_urlsafe(32), Session(principal, secrets.token_urlsafe(32), now, now)


class MemorySessions:
    """One process's sessions (tests, or a deliberately unshared console)."""

    def __init__(self, store: SessionStore | None = None) -> None:
        self.store = store or SessionStore()
        self._secret = secrets.token_bytes(32)

    async def create(self, principal: Principal) -> tuple[str, Session]:
        return self.store.create(principal)

    async def get(self, token: str | None) -> Session | None:
        return self.store.get(token)

    async def end(self, token: str | None) -> None:
        self.store.end(token)

    async def secret(self) -> bytes:
        return self._secret


class RedisSessions:
    """Sessions as Redis keys whose TTL is the idle timeout, capped by the absolute one."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        idle_s: float = IDLE_TIMEOUT_S,
        absolute_s: float = ABSOLUTE_TIMEOUT_S,
    ) -> None:
        self.redis, self.prefix = redis, prefix
        self.idle_s, self.absolute_s = idle_s, absolute_s

    def _key(self, token: str) -> str:
        return f"{self.prefix}console:session:{_digest(token)}"

    def _ttl(self, session: Session, now: float) -> int:
        left = session.created + self.absolute_s - now
        return max(1, int(min(self.idle_s, left)))

    async def create(self, principal: Principal) -> tuple[str, Session]:
        now = time.time()
        token, session = _new_session(principal, now)
        await self.redis.set(self._key(token), _encode(session), ex=self._ttl(session, now))
        return token, session

    async def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        key = self._key(token)
        raw = await self.redis.get(key)
        if raw is None:
            return None
        session, now = _decode(raw), time.time()
        if now - session.created > self.absolute_s or now - session.seen > self.idle_s:
            await self.redis.delete(key)
            return None
        session.seen = now
        await self.redis.set(key, _encode(session), ex=self._ttl(session, now), xx=True)
        return session

    async def end(self, token: str | None) -> None:
        if token:
            await self.redis.delete(self._key(token))

    async def secret(self) -> bytes:
        key = f"{self.prefix}console:secret"
        await self.redis.set(key, secrets.token_hex(32), nx=True)  # the first replica wins
        value = await self.redis.get(key)
        return bytes.fromhex(value.decode() if isinstance(value, bytes) else str(value))


class StoreSessions:
    """Sessions as rows of ``console_sessions`` (migration 0015), shared by every replica."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        idle_s: float = IDLE_TIMEOUT_S,
        absolute_s: float = ABSOLUTE_TIMEOUT_S,
    ) -> None:
        self.engine = engine
        self.idle_s, self.absolute_s = idle_s, absolute_s

    async def create(self, principal: Principal) -> tuple[str, Session]:
        now = time.time()
        token, session = _new_session(principal, now)
        async with self.engine.begin() as conn:
            # Expired rows go when someone signs in: the table stays as small as the live set.
            await conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))
            await conn.execute(
                insert(console_sessions).values(
                    digest=_digest(token),
                    data=_encode(session).decode(),
                    created_at=now,
                    seen_at=now,
                    expires_at=now + self.absolute_s,
                )
            )
        return token, session

    async def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        digest = _digest(token)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(console_sessions.c.data, console_sessions.c.seen_at).where(
                        console_sessions.c.digest == digest
                    )
                )
            ).first()
        if row is None:
            return None
        session, now = _decode(row.data), time.time()
        session.seen = float(row.seen_at)
        if now - session.created > self.absolute_s or now - session.seen > self.idle_s:
            await self.end(token)
            return None
        if now - session.seen >= TOUCH_EVERY_S:
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(console_sessions)
                    .where(console_sessions.c.digest == digest)
                    .values(seen_at=now)
                )
        session.seen = now
        return session

    async def end(self, token: str | None) -> None:
        if not token:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(console_sessions).where(console_sessions.c.digest == _digest(token))
            )

    async def secret(self) -> bytes:
        return await shared_secret(self.engine, "console")


def backend_for(engine: AsyncEngine, redis: Redis | None, prefix: str) -> SessionBackend:
    """Redis when configured (sessions expire by themselves), else the shared store."""
    if redis is not None:
        return RedisSessions(redis, prefix)
    return StoreSessions(engine)
