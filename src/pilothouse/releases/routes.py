"""Route versions: every distinct ``models`` section a gateway has run, content-addressed.

A config load or reload whose ``models`` differ from the latest stored route
version stores a new one (hash, who, when); replicas report the hash they run
in ``/readyz`` and the ``pilothouse_route_version_info`` metric.
"""

from __future__ import annotations

import difflib
import hashlib
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from ulid import ULID

from pilothouse.config.schema import ModelConfig
from pilothouse.errors import NotFoundError
from pilothouse.releases.tables import route_versions


def models_document(models: dict[str, ModelConfig]) -> dict[str, Any]:
    doc: dict[str, Any] = msgspec.to_builtins(models)
    return doc


def route_hash(models: dict[str, ModelConfig]) -> str:
    canonical = orjson.dumps(models_document(models), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def _public(row: Any) -> dict[str, Any]:
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    return {
        "id": row.id,
        "hash": row.hash,
        "actor": row.actor,
        "source": row.source,
        "at": at.isoformat(),
        "models": row.models,
    }


async def record(
    engine: AsyncEngine, models: dict[str, ModelConfig], *, actor: str, source: str
) -> tuple[str, bool]:
    """Store a route version unless the latest one has the same hash; (hash, stored)."""
    digest = route_hash(models)
    async with engine.begin() as conn:
        last = (
            await conn.execute(
                select(route_versions.c.hash).order_by(route_versions.c.id.desc()).limit(1)
            )
        ).first()
        if last is not None and last.hash == digest:
            return digest, False
        await conn.execute(
            route_versions.insert().values(
                id=str(ULID()).lower(),
                hash=digest,
                models=models_document(models),
                actor=actor,
                source=source,
                at=datetime.now(UTC),
            )
        )
    return digest, True


async def list_versions(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(route_versions).order_by(route_versions.c.id.desc()))
        return [_public(r) for r in rows]


async def get_version(engine: AsyncEngine, ref: str) -> dict[str, Any]:
    """A route version by id or by (a prefix of) its hash; the newest match wins."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(route_versions).order_by(route_versions.c.id.desc()))
        ).fetchall()
    for row in rows:
        if row.id == ref or row.hash.startswith(ref):
            return _public(row)
    raise NotFoundError(f"no route version {ref!r}")


def diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    """A unified diff of two route versions' ``models`` as YAML-ish sorted JSON."""
    left = orjson.dumps(a["models"], option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    right = orjson.dumps(b["models"], option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    return "".join(
        difflib.unified_diff(
            left.decode().splitlines(keepends=True),
            right.decode().splitlines(keepends=True),
            fromfile=a["hash"][:12],
            tofile=b["hash"][:12],
        )
    )
