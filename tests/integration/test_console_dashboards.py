"""The dashboards' numbers on both stores: nearest-rank percentiles per alias and per hour,
error and cache-hit rates, cache savings, and budget used in each key's and team's period."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from pilothouse.console.dashboard_queries import budget_use, dashboard
from pilothouse.store.db import create_engine, migrate
from pilothouse.store.tables import usage_records

pytestmark = pytest.mark.integration
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


def _row(n: int, at: datetime, **values: Any) -> dict[str, Any]:
    row = {
        "id": f"u{n:04d}", "request_id": f"req_{n}", "created_at": at, "endpoint": "chat",
        "alias": "chat", "status": 200, "latency_ms": 10.0, "ttft_ms": None, "cost_pico": 0,
        "cache_hit": False, "cache_tokens_saved": None, "cache_saved_pico": None,
        "key_id": None, "team_id": None,
    }  # fmt: skip
    row.update(values)
    return row


async def _numbers(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
        rows = [  # chat, first hour: latencies 1..100 ms; TTFT on the even ones
            _row(n, HOUR + timedelta(seconds=n), latency_ms=float(n),
                 ttft_ms=float(n) / 2 if n % 2 == 0 else None)
            for n in range(1, 101)
        ]  # fmt: skip
        rows += [  # chat, next hour: one success, one failure (excluded from latency), a hit
            _row(101, HOUR + timedelta(hours=1, minutes=1), latency_ms=500.0, key_id="k1"),
            _row(102, HOUR + timedelta(hours=1, minutes=2), status=503, latency_ms=9000.0),
            _row(103, HOUR + timedelta(hours=1, minutes=3), latency_ms=2.0, cache_hit=True,
                 cache_tokens_saved=120, cache_saved_pico=7_000_000, team_id="team_a"),
            _row(104, HOUR + timedelta(hours=1, minutes=4), alias="other", latency_ms=40.0,
                 cost_pico=3_000_000, key_id="k1", team_id="team_a"),
            _row(105, HOUR - timedelta(days=3), key_id="k1", cost_pico=1_000_000),  # old
        ]  # fmt: skip
        async with engine.begin() as conn:
            await conn.execute(insert(usage_records), rows)
        board = await dashboard(engine, HOUR, HOUR + timedelta(hours=3))
        assert board.hourly and len(board.buckets) == 3
        assert board.totals.requests == 104 and board.totals.errors == 1
        assert board.totals.cache_hits == 1
        assert (board.totals.tokens_saved, board.totals.saved_pico) == (120, 7_000_000)
        chat = next(a for a in board.aliases if a.alias == "chat")
        assert chat.rates.requests == 103
        # Nearest rank over 102 successes: 1..100, the 2 ms hit and 500 (the 503 left out).
        assert chat.latency == {"p50": 50.0, "p95": 96.0, "p99": 100.0}
        assert chat.ttft == {"p50": 25.0, "p95": 48.0, "p99": 50.0}  # 1..50 (the even / 2)
        first, second = board.buckets[0], board.buckets[1]
        assert board.latency_series["chat"][first] == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
        assert board.latency_series["chat"][second] == {"p50": 2.0, "p95": 500.0, "p99": 500.0}
        assert board.per_bucket[second].errors == 1 and board.per_bucket[second].requests == 4
        assert board.buckets[2] not in board.per_bucket  # a quiet hour stays a gap

        week = await dashboard(engine, HOUR - timedelta(days=6), HOUR + timedelta(hours=3))
        assert not week.hourly and week.totals.requests == 105

        keys = await budget_use(engine, "key", [("k1", "app", 10_000_000, "total"),
                                                ("k2", "idle", 5, "day")])  # fmt: skip
        assert [(b.id, b.spent_pico, b.left_pico) for b in keys] == [
            ("k1", 4_000_000, 6_000_000), ("k2", 0, 5)
        ]  # fmt: skip
        today = await budget_use(engine, "key", [("k1", "app", 10_000_000, "day")])
        today_row = (HOUR + timedelta(hours=1, minutes=4)).date() == datetime.now(UTC).date()
        assert today[0].spent_pico == (3_000_000 if today_row else 0)  # not the old row
        teams = await budget_use(engine, "team", [("team_a", "payments", 2_000_000, "total")])
        assert teams[0].spent_pico == 3_000_000 and teams[0].left_pico == 0
        assert teams[0].share == 1.5
    finally:
        await engine.dispose()


def test_dashboard_numbers(store_url: str) -> None:
    asyncio.run(_numbers(store_url))
