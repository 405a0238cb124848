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

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from ulid import ULID

from pilothouse import audit
from pilothouse.errors import InvalidRequestError, NotFoundError
from pilothouse.limits.money import pico_to_str, usd_to_pico
from pilothouse.store.tables import api_keys

KEY_PREFIX = "ph-"
BudgetPeriod = Literal["total", "day", "month"]
PERIODS: tuple[str, ...] = ("total", "day", "month")
SCOPES: tuple[str, ...] = ("inference", "admin", "metrics")
ROLES: tuple[str, ...] = ("admin", "operator", "viewer", "finance")
RESERVED_NAMES = ("bootstrap", "signal")


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
        }

    @property
    def admin_role(self) -> str | None:
        """The admin role: ``role``, or ``admin`` for legacy admin-scope keys."""
        if self.role is not None:
            return self.role
        return "admin" if "admin" in self.scopes else None


def _record(row: Any) -> KeyRecord:
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
    )


# Column bounds: rpm/tpm are 32-bit, budgets are 64-bit pico-USD (~9.2 million USD).
MAX_LIMIT = 2**31 - 1
MAX_BUDGET_PICO = 2**63 - 1


def _positive_int(spec: dict[str, Any], name: str) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InvalidRequestError(f"`{name}` must be an integer from 1 to {MAX_LIMIT}", param=name)
    return value


def validate_key_spec(spec: Any) -> dict[str, Any]:
    """Check an admin ``POST /admin/keys`` body; returns column values (no secret)."""
    if not isinstance(spec, dict):
        raise InvalidRequestError("request body must be a JSON object")
    allowed = {
        "name",
        "models",
        "rpm",
        "tpm",
        "model_limits",
        "budget_usd",
        "budget_period",
        "metadata",
        "scopes",
        "role",
        "max_concurrency",
    }
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise InvalidRequestError(f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidRequestError("`name` is required: a non-empty string", param="name")
    models = spec.get("models")
    if models is not None and (
        not isinstance(models, list) or not all(isinstance(m, str) and m for m in models)
    ):
        raise InvalidRequestError("`models` must be a list of model aliases", param="models")
    scopes = spec.get("scopes", ["inference"])
    if (
        not isinstance(scopes, list)
        or not scopes
        or not all(isinstance(s, str) and s in SCOPES for s in scopes)
    ):
        raise InvalidRequestError(f"`scopes` must be a list drawn from {SCOPES}", param="scopes")
    limits_in = spec.get("model_limits") or {}
    if not isinstance(limits_in, dict):
        raise InvalidRequestError("`model_limits` must map alias to {rpm, tpm}")
    model_limits: dict[str, dict[str, int | None]] = {}
    for alias, lim in limits_in.items():
        if not isinstance(lim, dict) or set(lim) - {"rpm", "tpm"}:
            raise InvalidRequestError(
                f"`model_limits.{alias}` must be an object with rpm and/or tpm",
                param="model_limits",
            )
        model_limits[alias] = {"rpm": _positive_int(lim, "rpm"), "tpm": _positive_int(lim, "tpm")}
    budget = spec.get("budget_usd")
    budget_pico = None
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int | float | str):
            raise InvalidRequestError("`budget_usd` must be a number", param="budget_usd")
        try:
            budget_pico = usd_to_pico(str(budget))
        except (ArithmeticError, ValueError):  # ValueError: NaN
            raise InvalidRequestError("`budget_usd` must be a number", param="budget_usd") from None
        if not 0 <= budget_pico <= MAX_BUDGET_PICO:
            raise InvalidRequestError(
                f"`budget_usd` must be from 0 to {MAX_BUDGET_PICO // 10**12}", param="budget_usd"
            )
    period = spec.get("budget_period", "total")
    if period not in PERIODS:
        raise InvalidRequestError(
            f"`budget_period` must be one of {PERIODS}", param="budget_period"
        )
    role = spec.get("role")
    if role is not None and role not in ROLES:
        raise InvalidRequestError(f"`role` must be one of {ROLES}", param="role")
    if role is not None and (name.strip() in RESERVED_NAMES or name.startswith("cli:")):
        raise InvalidRequestError(
            f"`name` {name!r} is reserved for a built-in principal", param="name"
        )
    metadata = spec.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidRequestError("`metadata` must be an object", param="metadata")
    return {
        "name": name.strip(),
        "models": models,
        "scopes": sorted(set(scopes)),
        "rpm": _positive_int(spec, "rpm"),
        "tpm": _positive_int(spec, "tpm"),
        "model_limits": model_limits or None,
        "budget_pico": budget_pico,
        "budget_period": period,
        "metadata": metadata,
        "role": role,
        "max_concurrency": _positive_int(spec, "max_concurrency"),
    }


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
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash))
            ).first()
        return _record(row) if row is not None else None

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
        digest = hash_secret(secret)
        record = self._by_hash.get(digest)
        if record is not None:
            return record
        expires = self._missing.get(digest)
        now = time.monotonic()
        if expires is not None and expires > now:
            return None
        found = await self.store.by_hash(digest)
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

    async def reload(self) -> None:
        """Refresh every cached key from the store (periodic safety net)."""
        fresh: dict[str, KeyRecord] = {}
        for digest in list(self._by_hash):
            record = await self.store.by_hash(digest)
            if record is not None and not record.revoked:
                fresh[digest] = record
        self._by_hash = fresh
