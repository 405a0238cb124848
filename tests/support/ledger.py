"""Read usage records straight from the store, the way an auditor would."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from pilothouse.store.db import create_engine
from pilothouse.store.tables import usage_records


def usage_rows(gateway: Any, **where: Any) -> list[dict[str, Any]]:
    """Rows for a running gateway, after it flushed its ledger queue (via the admin API)."""
    with gateway.admin() as admin:
        assert admin.get("/admin/usage").status_code == 200
    return stored_rows(gateway.settings.store.url, **where)


def stored_rows(store_url: str, **where: Any) -> list[dict[str, Any]]:
    async def fetch() -> list[dict[str, Any]]:
        engine = create_engine(store_url)
        try:
            query = select(usage_records).order_by(usage_records.c.created_at)
            for column, value in where.items():
                query = query.where(usage_records.c[column] == value)
            async with engine.connect() as conn:
                return [dict(r._mapping) for r in await conn.execute(query)]
        finally:
            await engine.dispose()

    return asyncio.run(fetch())
