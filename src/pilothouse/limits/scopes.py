"""Teams and users: entities with their own budget, RPM/TPM and allowed models.

A key belongs to a team and optionally to a user (who may belong to a team);
a request is admitted only when the key, its user and its team all allow it
(``gateway/scope_admission.py``). The hot path reads teams and users from
:class:`ScopeCache`, invalidated like keys: Redis pub/sub, store poll as net.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from ulid import ULID

from pilothouse import audit
from pilothouse.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    StoreUnavailableError,
)
from pilothouse.inputs import JsonLimits, check_metadata
from pilothouse.limits.key_spec import (
    parse_budget,
    parse_models,
    parse_name,
    parse_period,
    parse_ref,
    positive_int,
)
from pilothouse.limits.money import pico_to_str
from pilothouse.store.tables import api_keys, teams, users

KINDS: dict[str, Table] = {"team": teams, "user": users}
FIELDS = frozenset({"name", "models", "rpm", "tpm", "budget_usd", "budget_period", "metadata"})


def kind_of(scope_id: str) -> str | None:
    """``team`` or ``user`` for a ``team_…``/``user_…`` id, else ``None`` (a key id)."""
    head = scope_id.partition("_")[0]
    return head if head in KINDS else None


@dataclass(frozen=True, slots=True)
class ScopeRecord:
    """A team or a user as the hot path sees it; immutable, safe to share across tasks."""

    kind: str
    id: str
    name: str
    models: frozenset[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_pico: int | None = None
    budget_period: str = "total"
    metadata: dict[str, Any] = field(default_factory=dict)
    team_id: str | None = None  # users only
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def allows(self, alias: str) -> bool:
        return self.models is None or alias in self.models

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "models": sorted(self.models) if self.models is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_usd": pico_to_str(self.budget_pico) if self.budget_pico is not None else None,
            "budget_period": self.budget_period,
            "metadata": self.metadata,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }
        if self.kind == "user":
            out["team_id"] = self.team_id
        return out


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _record(kind: str, row: Any) -> ScopeRecord:
    return ScopeRecord(
        kind=kind,
        id=row.id,
        name=row.name,
        models=frozenset(row.models) if row.models is not None else None,
        rpm=row.rpm,
        tpm=row.tpm,
        budget_pico=row.budget_pico,
        budget_period=row.budget_period or "total",
        metadata=row.metadata or {},
        team_id=getattr(row, "team_id", None),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def validate_scope_spec(kind: str, spec: Any, *, patch: bool = False) -> dict[str, Any]:
    """Check a team/user body; returns column values (only the given ones for a patch)."""
    if not isinstance(spec, dict) or (patch and not spec):
        raise InvalidRequestError(
            "request body must be a " + ("non-empty " if patch else "") + "JSON object"
        )
    allowed = FIELDS | ({"team_id"} if kind == "user" else set())
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise InvalidRequestError(f"unknown field(s): {', '.join(unknown)}", param=unknown[0])
    if patch and "name" in spec and spec["name"] is None:
        raise InvalidRequestError("`name` cannot be removed", param="name")
    values: dict[str, Any] = {}
    if not patch or "name" in spec:
        values["name"] = parse_name(spec).strip()
    parsers: dict[str, Callable[[Any], Any]] = {
        "models": parse_models,
        "rpm": lambda v: positive_int({"rpm": v}, "rpm"),
        "tpm": lambda v: positive_int({"tpm": v}, "tpm"),
        "budget_pico": parse_budget,
        "budget_period": lambda v: parse_period("total" if v is None else v),
        "metadata": lambda v: check_metadata(v or {}, JsonLimits(), "metadata"),
        "team_id": lambda v: parse_ref(v, "team_id"),
    }
    for column, parse in parsers.items():
        name = "budget_usd" if column == "budget_pico" else column
        if name in spec or (not patch and name in allowed):
            values[column] = parse(spec.get(name))
    return values


async def membership(conn: AsyncConnection, team_id: str | None, user_id: str | None) -> str | None:
    """Check a key's team and user exist and agree; returns the key's team (the user's if unset).

    A 400 names the field: an unknown team or user, or a user of another team.
    """
    if team_id is not None:
        found = (await conn.execute(select(teams.c.id).where(teams.c.id == team_id))).first()
        if found is None:
            raise InvalidRequestError(f"no team with id {team_id!r}", param="team_id")
    if user_id is None:
        return team_id
    row = (await conn.execute(select(users.c.team_id).where(users.c.id == user_id))).first()
    if row is None:
        raise InvalidRequestError(f"no user with id {user_id!r}", param="user_id")
    if team_id is not None and row.team_id != team_id:
        where = f"team {row.team_id!r}" if row.team_id else "no team"
        raise InvalidRequestError(
            f"user {user_id!r} belongs to {where}, not to team {team_id!r}", param="user_id"
        )
    return team_id if team_id is not None else row.team_id


class ScopeStore:
    """Team and user rows: admin operations, each committed with its audit entry."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, kind: str, spec: Any, *, actor: str = "system") -> ScopeRecord:
        values = validate_scope_spec(kind, spec)
        now = datetime.now(UTC)
        scope_id = f"{kind}_" + str(ULID()).lower()
        row: dict[str, Any] = {"id": scope_id, "created_at": now, "updated_at": now, **values}
        async with self.engine.begin() as conn:
            if kind == "user" and values.get("team_id"):
                await membership(conn, values["team_id"], None)
            try:
                await conn.execute(KINDS[kind].insert().values(**row))
            except IntegrityError:
                raise ConflictError(
                    f"a {kind} named {values['name']!r} already exists", param="name"
                ) from None
            await audit.append(
                conn, actor=actor, action=f"{kind}.create", target=scope_id,
                details=_auditable(values),
            )  # fmt: skip
        return await self.get(kind, scope_id)

    async def list_all(self, kind: str, *, team_id: str | None = None) -> list[ScopeRecord]:
        table = KINDS[kind]
        query = select(table).order_by(table.c.created_at, table.c.id)
        if team_id is not None and kind == "user":
            query = query.where(table.c.team_id == team_id)
        async with self.engine.connect() as conn:
            return [_record(kind, r) for r in await conn.execute(query)]

    async def find(self, scope_id: str) -> ScopeRecord | None:
        kind = kind_of(scope_id)
        if kind is None:
            return None
        table = KINDS[kind]
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(table).where(table.c.id == scope_id))).first()
        return _record(kind, row) if row is not None else None

    async def get(self, kind: str, scope_id: str) -> ScopeRecord:
        record = await self.find(scope_id) if kind_of(scope_id) == kind else None
        if record is None:
            raise NotFoundError(f"no {kind} with id {scope_id!r}")
        return record

    async def update(
        self, kind: str, scope_id: str, patch: Any, *, actor: str = "system"
    ) -> tuple[ScopeRecord, list[str]]:
        """Change a team or user; returns it and the ids of keys whose team moved with it.

        A user moving to another team takes its keys along (so a key's user
        always belongs to the key's team).
        """
        await self.get(kind, scope_id)
        values = validate_scope_spec(kind, patch, patch=True)
        table = KINDS[kind]
        moved: list[str] = []
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            if kind == "user" and "team_id" in values:
                await membership(conn, values["team_id"], None)
                keys_of_user = select(api_keys.c.id).where(api_keys.c.user_id == scope_id)
                moved = [r.id for r in await conn.execute(keys_of_user)]
                await conn.execute(
                    update(api_keys)
                    .where(api_keys.c.user_id == scope_id)
                    .values(team_id=values["team_id"], updated_at=now)
                )
            try:
                await conn.execute(
                    update(table).where(table.c.id == scope_id).values(**values, updated_at=now)
                )
            except IntegrityError:
                raise ConflictError(
                    f"a {kind} named {values.get('name')!r} already exists", param="name"
                ) from None
            await audit.append(
                conn, actor=actor, action=f"{kind}.update", target=scope_id,
                details=_auditable(values),
            )  # fmt: skip
        return await self.get(kind, scope_id), moved

    async def delete(self, kind: str, scope_id: str, *, actor: str = "system") -> ScopeRecord:
        """Delete a team or user nothing live refers to (else 409: move or revoke those first)."""
        record = await self.get(kind, scope_id)
        table = KINDS[kind]
        column = api_keys.c.team_id if kind == "team" else api_keys.c.user_id
        async with self.engine.begin() as conn:
            live_keys = select(func.count()).where(
                column == scope_id, api_keys.c.revoked_at.is_(None)
            )
            n_keys = int((await conn.execute(live_keys)).scalar_one())
            n_users = 0
            if kind == "team":
                members = select(func.count()).where(users.c.team_id == scope_id)
                n_users = int((await conn.execute(members)).scalar_one())
            if n_keys or n_users:
                parts = [f"{n_keys} live key(s)"] * bool(n_keys) + [f"{n_users} user(s)"] * bool(
                    n_users
                )
                raise ConflictError(
                    f"{kind} {scope_id!r} still has {' and '.join(parts)}; "
                    "revoke or move them first"
                )
            await conn.execute(table.delete().where(table.c.id == scope_id))
            await audit.append(
                conn, actor=actor, action=f"{kind}.delete", target=scope_id,
                details={"name": record.name},
            )  # fmt: skip
        return record

    async def changed_since(self, since: datetime) -> list[str]:
        """Team and user ids changed at or after ``since`` (minus clock slack)."""
        out: list[str] = []
        async with self.engine.connect() as conn:
            for table in KINDS.values():
                query = select(table.c.id).where(table.c.updated_at >= since - timedelta(seconds=2))
                out += [r.id for r in await conn.execute(query)]
        return out


def _auditable(values: dict[str, Any]) -> dict[str, Any]:
    details = {k: v for k, v in values.items() if k != "metadata"}
    if "metadata" in values:
        details["metadata_keys"] = sorted(values["metadata"] or {})
    return details


class ScopeCache:
    """Id → team/user for the hot path; a miss reads the store once, a change drops the entry."""

    def __init__(self, store: ScopeStore) -> None:
        self.store = store
        self._by_id: dict[str, ScopeRecord | None] = {}

    async def get(self, scope_id: str) -> ScopeRecord | None:
        """The team or user, or ``None`` when it no longer exists."""
        if scope_id in self._by_id:
            return self._by_id[scope_id]
        try:
            record = await self.store.find(scope_id)
        except (SQLAlchemyError, OSError, TimeoutError):
            raise StoreUnavailableError(
                "the store is unreachable and this key's team or user is not cached; retry shortly"
            ) from None
        if len(self._by_id) > 100_000:
            self._by_id.clear()
        self._by_id[scope_id] = record
        return record

    def drop(self, scope_id: str) -> None:
        self._by_id.pop(scope_id, None)

    def clear(self) -> None:
        self._by_id.clear()
