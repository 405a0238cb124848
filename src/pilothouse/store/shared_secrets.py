"""Random secrets every replica shares and keeps across restarts, in the store.

Kept in the ``console_secrets`` table (named for its first user, the console's
signing key): the first replica to start inserts one, every later one reads it.
"""

from __future__ import annotations

import secrets

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.console.tables import console_secrets


async def shared_secret(engine: AsyncEngine, name: str) -> bytes:
    """The 32-byte secret called ``name``, created on first use (first writer wins)."""
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(console_secrets).values(name=name, value=secrets.token_hex(32))
            )
    except IntegrityError:
        pass  # another replica (or an earlier start) created it: use that one
    query = select(console_secrets.c.value).where(console_secrets.c.name == name)
    async with engine.connect() as conn:
        value = (await conn.execute(query)).scalar_one()
    return bytes.fromhex(value)
