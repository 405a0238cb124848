"""Virtual API keys: created with a secret shown once, stored as a SHA-256 hash.

Keys are 256-bit random tokens, so a fast hash is safe (no password stretching
needed) and lets auth run from an in-memory map without a DB round trip.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from ulid import ULID

from pilothouse import audit
from pilothouse.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    StoreUnavailableError,
)
from pilothouse.limits import scopes
from pilothouse.limits.key_spec import (  # re-exported: the key API lives here
    PATCHABLE,
    PERIODS,
    RESERVED_NAMES,
    ROLES,
    SCOPES,
    current_spec,
    validate_key_patch,
    validate_key_spec,
)
from pilothouse.limits.money import pico_to_str
from pilothouse.store.tables import api_keys

__all__ = [
    "PATCHABLE", "PERIODS", "RESERVED_NAMES", "ROLES", "SCOPES", "KeyCache", "KeyRecord",
    "KeyStore", "current_spec", "validate_key_patch", "validate_key_spec",
]  # fmt: skip
KEY_PREFIX = "ph-"
BudgetPeriod = Literal["total", "day", "month"]
DEFAULT_ROTATION_GRACE_S = 3600  # how long a rotated-out secret keeps working unless told otherwise


def generate_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AliasLimits:
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What the hot path knows about a key; immutable, safe to share across tasks."""

    id: str
    name: str
    prefix: str
    scopes: frozenset[str]
    models: frozenset[str] | None
    rpm: int | None
    tpm: int | None
    model_limits: dict[str, AliasLimits] = field(default_factory=dict)
    budget_pico: int | None = None
    budget_period: str = "total"
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    revoked: bool = False
    role: str | None = None  # admin principal role; None for inference-only keys
    max_concurrency: int | None = None  # in-flight cap; None: `limits.max_concurrency_per_key`
    expires_at: datetime | None = (
        None  # for this secret: the key's expiry or a rotation's grace end
    )
    rotated: bool = False  # this secret is the previous one of a rotated key (grace period)
    team_id: str | None = None  # its team's limits and budget apply too (limits/scopes.py)
    user_id: str | None = None

    def allows(self, alias: str) -> bool:
        return self.models is None or alias in self.models

    def public(self) -> dict[str, Any]:
        """The key as the admin API shows it: never the secret or its hash."""
        return {
            "id": self.id,
            "name": self.name,
            "key_prefix": self.prefix,
            "scopes": sorted(self.scopes),
            "models": sorted(self.models) if self.models is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "model_limits": {
                alias: {"rpm": lim.rpm, "tpm": lim.tpm} for alias, lim in self.model_limits.items()
            }
            or None,
            "budget_usd": pico_to_str(self.budget_pico) if self.budget_pico is not None else None,
            "budget_period": self.budget_period,
            "max_concurrency": self.max_concurrency,
            "metadata": self.metadata,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "revoked": self.revoked,
            "role": self.admin_role,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "team_id": self.team_id,
            "user_id": self.user_id,
        }

    @property
    def admin_role(self) -> str | None:
        """The admin role: ``role``, or ``admin`` for legacy admin-scope keys."""
        if self.role is not None:
            return self.role
        return "admin" if "admin" in self.scopes else None


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _record(row: Any, *, previous: bool = False) -> KeyRecord:
    """A row as the hot path sees it; ``previous``: looked up by a rotated-out secret."""
    limits = {
        alias: AliasLimits(rpm=v.get("rpm"), tpm=v.get("tpm"))
        for alias, v in (row.model_limits or {}).items()
    }
    created = row.created_at
    if created is not None and created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return KeyRecord(
        id=row.id,
        name=row.name,
        prefix=row.key_prefix,
        scopes=frozenset(row.scopes or ["inference"]),
        models=frozenset(row.models) if row.models is not None else None,
        rpm=row.rpm,
        tpm=row.tpm,
        model_limits=limits,
        budget_pico=row.budget_pico,
        budget_period=row.budget_period or "total",
        metadata=row.metadata or {},
        created_at=created,
        revoked=row.revoked_at is not None,
        role=getattr(row, "role", None),
        max_concurrency=getattr(row, "max_concurrency", None),
        expires_at=_effective_expiry(row, previous),
        rotated=previous,
        team_id=getattr(row, "team_id", None),
        user_id=getattr(row, "user_id", None),
    )


def _effective_expiry(row: Any, previous: bool) -> datetime | None:
    expires = _utc(getattr(row, "expires_at", None))
    if not previous:
        return expires
    grace_end = _utc(getattr(row, "previous_valid_until", None)) or datetime.now(UTC)
    return grace_end if expires is None else min(expires, grace_end)


class KeyStore:
    """Key rows in the store. Admin operations only; the hot path uses :class:`KeyCache`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, spec: dict[str, Any], *, actor: str = "system") -> tuple[KeyRecord, str]:
        """Create a key from a validated spec; returns the record and the one-time secret.

        The row and its ``key.create`` audit entry commit together.
        """
        values = validate_key_spec(spec)
        secret = generate_secret()
        async with self.engine.connect() as conn:
            values["team_id"] = await scopes.membership(conn, values["team_id"], values["user_id"])
        row = {
            "id": "key_" + str(ULID()).lower(),
            "key_hash": hash_secret(secret),
            "key_prefix": secret[:10],
            "created_at": datetime.now(UTC),
            "revoked_at": None,
            **values,
        }
        async with self.engine.begin() as conn:
            await conn.execute(api_keys.insert().values(**row))
            await audit.append(
                conn,
                actor=actor,
                action="key.create",
                target=row["id"],
                details={"name": row["name"], "role": row["role"], "scopes": row["scopes"]},
            )
        return _record(_Row(row)), secret

    async def list_all(self, *, include_revoked: bool = False) -> list[KeyRecord]:
        query = select(api_keys).order_by(api_keys.c.created_at)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).fetchall()
        return [_record(r) for r in rows]

    async def get(self, key_id: str) -> KeyRecord:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        if row is None:
            raise NotFoundError(f"no key with id {key_id!r}")
        return _record(row)

    async def by_hash(self, key_hash: str) -> KeyRecord | None:
        """The key this secret's hash opens: its current secret, or a rotated-out one."""
        query = select(api_keys).where(
            or_(api_keys.c.key_hash == key_hash, api_keys.c.previous_key_hash == key_hash)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return _record(row, previous=row.key_hash != key_hash)

    async def update(self, key_id: str, patch: Any, *, actor: str = "system") -> KeyRecord:
        """Change a key's limits, budget, models, metadata or expiry; the secret stays."""
        record = await self.get(key_id)
        if record.revoked:
            raise InvalidRequestError(f"key {key_id!r} is revoked; it cannot be changed")
        values = validate_key_patch(record, patch)
        async with self.engine.begin() as conn:
            if "team_id" in values or "user_id" in values:
                team = values.get("team_id", record.team_id)
                user = values.get("user_id", record.user_id)
                values["team_id"] = await scopes.membership(conn, team, user)
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(**values, updated_at=datetime.now(UTC))
            )
            details = {k: _auditable(v) for k, v in values.items() if k != "metadata"}
            if "metadata" in values:
                details["metadata_keys"] = sorted(values["metadata"] or {})
            await audit.append(
                conn, actor=actor, action="key.update", target=key_id, details=details
            )
        return await self.get(key_id)

    async def rotate(
        self, key_id: str, *, grace_s: float, actor: str = "system"
    ) -> tuple[KeyRecord, str]:
        """A new secret; the old one keeps working for ``grace_s`` seconds, then stops."""
        if (
            isinstance(grace_s, bool)
            or not isinstance(grace_s, int | float)
            or not (0 <= grace_s <= 30 * 86400)
        ):
            raise InvalidRequestError("`grace_s` must be between 0 and 2592000", param="grace_s")
        record = await self.get(key_id)
        if record.revoked:
            raise InvalidRequestError(f"key {key_id!r} is revoked; it cannot be rotated")
        secret = generate_secret()
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            current = (
                await conn.execute(select(api_keys.c.key_hash).where(api_keys.c.id == key_id))
            ).scalar_one()
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(
                    key_hash=hash_secret(secret),
                    key_prefix=secret[:10],
                    previous_key_hash=current if grace_s > 0 else None,
                    previous_valid_until=now + timedelta(seconds=grace_s) if grace_s > 0 else None,
                    updated_at=now,
                )
            )
            await audit.append(
                conn, actor=actor, action="key.rotate", target=key_id, details={"grace_s": grace_s}
            )
        return await self.get(key_id), secret

    async def changed_since(self, since: datetime) -> list[str]:
        """Ids updated or rotated at or after ``since`` (minus clock slack)."""
        query = select(api_keys.c.id).where(api_keys.c.updated_at >= since - timedelta(seconds=2))
        async with self.engine.connect() as conn:
            return [r.id for r in await conn.execute(query)]

    async def revoke(self, key_id: str, *, actor: str = "system") -> KeyRecord:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            if result.rowcount:
                await audit.append(conn, actor=actor, action="key.revoke", target=key_id)
        record = await self.get(key_id)
        if result.rowcount == 0 and not record.revoked:  # pragma: no cover - race only
            raise NotFoundError(f"no key with id {key_id!r}")
        return record

    async def revoked_since(self, since: datetime) -> tuple[list[str], datetime]:
        """Ids revoked at or after ``since``, and the timestamp to poll from next."""
        now = datetime.now(UTC)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(api_keys.c.id).where(api_keys.c.revoked_at >= since - timedelta(seconds=2))
            )
            return [r.id for r in rows], now


def expired(record: KeyRecord) -> AuthenticationError:
    when = record.expires_at.isoformat(timespec="seconds") if record.expires_at else "?"
    if record.rotated:
        message = f"this API key was rotated; the old secret's grace period ended at {when}"
    else:
        message = f"this API key expired at {when}"
    return AuthenticationError(message, code="expired_api_key")


def _auditable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class _Row:
    """Attribute access over a dict, so freshly inserted rows reuse ``_record``."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


class KeyCache:
    """Hash → key map for auth without a DB round trip.

    Misses go to the store once and are remembered (negatively for a short
    time, so a flood of bad keys cannot hammer the database). Revocations are
    applied by :meth:`forget`, called locally and from the Redis broadcast.
    """

    NEGATIVE_TTL_S = 2.0

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self._by_hash: dict[str, KeyRecord] = {}
        self._missing: dict[str, float] = {}
        self._revoked_ids: set[str] = set()

    async def lookup(self, secret: str) -> KeyRecord | None:
        """The key for ``secret``; ``None`` when unknown or revoked; 401 once it has expired."""
        record = await self._lookup(secret)
        expires = record.expires_at if record is not None else None
        if record is not None and expires is not None and time.time() >= expires.timestamp():
            raise expired(record)
        return record

    async def _lookup(self, secret: str) -> KeyRecord | None:
        digest = hash_secret(secret)
        record = self._by_hash.get(digest)
        if record is not None:
            return record
        expires = self._missing.get(digest)
        now = time.monotonic()
        if expires is not None and expires > now:
            return None
        try:
            found = await self.store.by_hash(digest)
        except (SQLAlchemyError, OSError, TimeoutError):
            # Unknown is not invalid: say "retry" (503), never 401 or a 500 traceback.
            raise StoreUnavailableError(
                "the key store is unreachable and this key is not cached; retry shortly"
            ) from None
        if found is None or found.revoked or found.id in self._revoked_ids:
            if len(self._missing) > 100_000:
                self._missing.clear()
            self._missing[digest] = now + self.NEGATIVE_TTL_S
            return None
        self._by_hash[digest] = found
        return found

    def forget(self, key_id: str) -> None:
        """Drop a revoked key everywhere in this process, immediately."""
        self._revoked_ids.add(key_id)
        for digest, record in list(self._by_hash.items()):
            if record.id == key_id:
                del self._by_hash[digest]

    def drop(self, key_id: str) -> None:
        """Forget a changed key's cached entries (not revoked): the next use reloads it."""
        for digest, record in list(self._by_hash.items()):
            if record.id == key_id:
                del self._by_hash[digest]
        self._missing.clear()  # a rotated-in secret may have been tried a moment too early

    async def reload(self) -> None:
        """Refresh every cached key from the store (periodic safety net)."""
        fresh: dict[str, KeyRecord] = {}
        for digest in list(self._by_hash):
            record = await self.store.by_hash(digest)
            if record is not None and not record.revoked:
                fresh[digest] = record
        self._by_hash = fresh
