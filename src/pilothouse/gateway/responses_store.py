"""Stored responses: one row per ``store: true`` answer, readable only by the key that made it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.errors import NotFoundError, StoreError
from pilothouse.providers.base import JSON
from pilothouse.store.tables import responses


def not_found(response_id: str) -> NotFoundError:
    # The same answer for "never existed" and "another key's": ids are not an oracle.
    return NotFoundError(f"no response with id {response_id!r}", param="response_id")


def unreachable() -> StoreError:
    error = StoreError("stored responses are unavailable: the store is unreachable; retry shortly")
    error.headers["Retry-After"] = "1"
    return error


async def save(
    engine: AsyncEngine, *, key_id: str, alias: str, conversation: list[JSON], response: JSON
) -> None:
    row: dict[str, Any] = {
        "id": response["id"],
        "key_id": key_id,
        "created_at": datetime.now(UTC),
        "alias": alias,
        "conversation": conversation,
        "response": response,
    }
    async with engine.begin() as conn:
        await conn.execute(insert(responses).values(**row))


async def load(engine: AsyncEngine, response_id: str, key_id: str) -> tuple[JSON, list[JSON]]:
    """The stored response and its conversation, or a 404."""
    query = select(responses.c.response, responses.c.conversation).where(
        responses.c.id == response_id, responses.c.key_id == key_id
    )
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
    except (SQLAlchemyError, OSError):
        raise unreachable() from None
    if row is None:
        raise not_found(response_id)
    return dict(row.response), list(row.conversation)


async def remove(engine: AsyncEngine, response_id: str, key_id: str) -> None:
    query = delete(responses).where(responses.c.id == response_id, responses.c.key_id == key_id)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(query)
    except (SQLAlchemyError, OSError):
        raise unreachable() from None
    if not result.rowcount:
        raise not_found(response_id)
