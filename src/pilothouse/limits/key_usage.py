"""Spend and last use per key, for the key listings (read from the ledger, never the hot path)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.limits.budget import period_key, period_start
from pilothouse.store.tables import usage_records


@dataclass(frozen=True, slots=True)
class KeySpend:
    total_pico: int = 0
    day_pico: int = 0
    month_pico: int = 0
    last_used_at: datetime | None = None

    def in_period(self, period: str) -> int:
        return {"day": self.day_pico, "month": self.month_pico}.get(period, self.total_pico)


async def spend_by_key(engine: AsyncEngine, now: datetime | None = None) -> dict[str, KeySpend]:
    """One grouped query: every key's spend in total, today and this month (UTC), and last use."""
    now = now or datetime.now(UTC)
    day = period_start(period_key("day", now))
    month = period_start(period_key("month", now))
    cost, at = usage_records.c.cost_pico, usage_records.c.created_at
    query = (
        select(
            usage_records.c.key_id,
            func.coalesce(func.sum(cost), 0),
            func.coalesce(func.sum(case((at >= day, cost), else_=0)), 0),
            func.coalesce(func.sum(case((at >= month, cost), else_=0)), 0),
            func.max(at),
        )
        .where(usage_records.c.key_id.is_not(None))
        .group_by(usage_records.c.key_id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    out: dict[str, KeySpend] = {}
    for key_id, total, today, this_month, last in rows:
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        out[key_id] = KeySpend(int(total), int(today), int(this_month), last)
    return out
