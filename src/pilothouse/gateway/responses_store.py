"""Stored responses: one row per ``store: true`` answer, readable only by the key that made it.

A stored response must be readable at once, by any replica: clients send
``previous_response_id`` straight after an answer. Where only the store can
guarantee that (PostgreSQL without Redis, so replicas may be on other hosts),
the row is inserted before the answer is returned. Elsewhere the insert leaves
the request path, because it dominated the Responses API's added latency
(docs/benchmarks.md): with Redis the response is written there first (one
round trip, seen by every replica) and kept for ``REDIS_TTL_S``; on SQLite
(one host; several processes need Redis) an in-process table serves reads
until the background insert lands. With Redis no in-process copy is kept, so a
delete on one replica holds on every other. Deleting waits for a pending insert first,
so a delete cannot be undone by it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.errors import NotFoundError, StoreError
from pilothouse.providers.base import JSON
from pilothouse.store.tables import responses

log = logging.getLogger("pilothouse.responses")
REDIS_TTL_S = 24 * 3600  # the store keeps the row; Redis only bridges the insert
RECENT_MAX = 10_000  # in-process copies kept while (and a little after) inserts land

Stored = tuple[str, JSON, list[JSON]]  # key id, response, conversation


def not_found(response_id: str) -> NotFoundError:
    # The same answer for "never existed" and "another key's": ids are not an oracle.
    return NotFoundError(f"no response with id {response_id!r}", param="response_id")


def unreachable() -> StoreError:
    error = StoreError("stored responses are unavailable: the store is unreachable; retry shortly")
    error.headers["Retry-After"] = "1"
    return error


class ResponseStore:
    def __init__(
        self,
        engine: AsyncEngine,
        redis: Redis | None,
        prefix: str,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self.engine, self.redis, self.prefix, self.spawn = engine, redis, prefix, spawn
        self.write_behind = redis is not None or engine.dialect.name == "sqlite"
        self._recent: OrderedDict[str, Stored] = OrderedDict()
        self._pending: dict[str, asyncio.Future[None]] = {}

    def _redis_key(self, response_id: str) -> str:
        return f"{self.prefix}response:{response_id}"

    async def save(
        self, *, key_id: str, alias: str, conversation: list[JSON], response: JSON
    ) -> None:
        row: dict[str, Any] = {
            "id": response["id"],
            "key_id": key_id,
            "created_at": datetime.now(UTC),
            "alias": alias,
            "conversation": conversation,
            "response": response,
        }
        if not self.write_behind:
            await self._insert(row)
            return
        if self.redis is not None:
            payload = orjson.dumps([key_id, response, conversation])
            try:
                await self.redis.set(self._redis_key(row["id"]), payload, ex=REDIS_TTL_S)
            except Exception:
                await self._insert(row)  # Redis is down: the store is the only shared copy
                return
        else:  # one process (SQLite): reads come here until the insert lands
            self._remember(row["id"], (key_id, response, conversation))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[row["id"]] = done
        self.spawn(self._insert_behind(row, done))

    def _remember(self, response_id: str, stored: Stored) -> None:
        self._recent[response_id] = stored
        while len(self._recent) > RECENT_MAX:
            self._recent.popitem(last=False)

    async def _insert(self, row: dict[str, Any]) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(responses).values(**row))

    async def _insert_behind(self, row: dict[str, Any], done: asyncio.Future[None]) -> None:
        try:
            await self._insert(row)
        except Exception as exc:  # kept in Redis / in process; the next start has only the store
            log.error("stored response %s not written to the store: %s", row["id"], exc)
        finally:
            self._pending.pop(row["id"], None)
            if not done.done():
                done.set_result(None)

    async def load(self, response_id: str, key_id: str) -> tuple[JSON, list[JSON]]:
        """The stored response and its conversation, or a 404."""
        stored = self._recent.get(response_id)
        if stored is None and self.redis is not None:
            try:
                raw = await self.redis.get(self._redis_key(response_id))
            except Exception:
                raw = None
            if raw is not None:
                owner, response, conversation = orjson.loads(raw)
                stored = (owner, response, conversation)
        if stored is not None:
            if stored[0] != key_id:
                raise not_found(response_id)
            return dict(stored[1]), list(stored[2])
        query = select(responses.c.response, responses.c.conversation).where(
            responses.c.id == response_id, responses.c.key_id == key_id
        )
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(query)).first()
        except (SQLAlchemyError, OSError):
            raise unreachable() from None
        if row is None:
            raise not_found(response_id)
        return dict(row.response), list(row.conversation)

    async def remove(self, response_id: str, key_id: str) -> None:
        pending = self._pending.get(response_id)
        if pending is not None:
            await pending  # or the insert would bring it back
        found = False
        stored = self._recent.get(response_id)
        if stored is not None and stored[0] == key_id:
            del self._recent[response_id]
            found = True
        if self.redis is not None:
            try:
                raw = await self.redis.get(self._redis_key(response_id))
                if raw is not None and orjson.loads(raw)[0] == key_id:
                    await self.redis.delete(self._redis_key(response_id))
                    found = True
            except Exception as exc:  # the store below is the record
                log.warning("stored response %s: Redis delete failed: %s", response_id, exc)
        query = delete(responses).where(responses.c.id == response_id, responses.c.key_id == key_id)
        try:
            async with self.engine.begin() as conn:
                result = await conn.execute(query)
        except (SQLAlchemyError, OSError):
            raise unreachable() from None
        if not (found or result.rowcount):
            raise not_found(response_id)
