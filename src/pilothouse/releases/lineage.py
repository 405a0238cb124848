"""Lineage of one request: key, alias, route version, prompt version, the move that served it.

Everything is read from what the request left behind (its usage record) and
the registry's immutable history, so the answer is the same tomorrow.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.errors import NotFoundError
from pilothouse.releases.registry import PromptRegistry
from pilothouse.releases.tables import label_history
from pilothouse.store.tables import api_keys, usage_records


async def lineage(engine: AsyncEngine, request_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(usage_records).where(usage_records.c.request_id == request_id)
            )
        ).first()
        if row is None:
            raise NotFoundError(f"no request {request_id!r} in the usage ledger")
        key = None
        if row.key_id:
            k = (await conn.execute(select(api_keys).where(api_keys.c.id == row.key_id))).first()
            key = {"id": row.key_id, "name": k.name if k is not None else None}
        served_at = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        move = None
        if row.prompt_name and row.prompt_label:
            move = (
                await conn.execute(
                    select(label_history)
                    .where(
                        label_history.c.name == row.prompt_name,
                        label_history.c.label == row.prompt_label,
                        label_history.c.action == "move",
                        label_history.c.to_version == row.prompt_version,
                        label_history.c.at <= served_at,
                    )
                    .order_by(label_history.c.id.desc())
                    .limit(1)
                )
            ).first()
    out: dict[str, Any] = {
        "request_id": request_id,
        "created_at": served_at.isoformat(),
        "key": key,
        "alias": row.alias,
        "route_version": row.route_version,
        "status": row.status,
        "prompt": None,
        "promotion": None,
        "evidence": [],
        "forced": False,
    }
    if not row.prompt_name:
        return out
    registry = PromptRegistry(engine)
    version = await registry.version(row.prompt_name, row.prompt_version)
    out["prompt"] = {
        "name": version.name,
        "version": version.version,
        "hash": version.hash,
        "label": row.prompt_label,
        "author": version.author,
        "reason": version.reason,
        "created_at": version.created_at.isoformat(),
    }
    if move is not None:
        at = move.at if move.at.tzinfo else move.at.replace(tzinfo=UTC)
        evidence = [e for e in move.evidence or [] if "run_id" in e]
        out["promotion"] = {
            "id": move.id,
            "label": move.label,
            "from": move.from_version,
            "to": move.to_version,
            "who": move.actor,
            "when": at.isoformat(),
            "why": move.reason,
            "forced": bool(move.forced),
            "missing": [m for e in move.evidence or [] for m in e.get("missing", [])],
        }
        out["evidence"] = evidence
        out["forced"] = bool(move.forced)
    return out
