"""The request log's search, filters and sort orders on both stores (SQLite FTS5, PostgreSQL
full-text): what a user finds, what stays unfindable (erased, pruned, never captured)."""

from __future__ import annotations

import asyncio
import importlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, insert, update

from pilothouse.console import queries
from pilothouse.console.queries import LogFilters, parse_filters
from pilothouse.store.db import _alembic_config, create_engine, migrate
from pilothouse.store.tables import api_keys, teams, traces, usage_records, users

pytestmark = pytest.mark.integration
MIGRATION = importlib.import_module("pilothouse.store.migrations.versions.0017_console_search")
NOW = datetime.now(UTC).replace(microsecond=0)


def _content(prompt: str, answer: str) -> dict[str, Any]:
    return {
        "request": {"model": "chat", "messages": [{"role": "user", "content": prompt}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": answer}}]},
    }


def _trace(n: int, content: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "trace_id": f"{n:032x}",
        "request_id": f"req_{n}",
        "created_at": NOW - timedelta(minutes=n),
        "attempts": 1,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_pico": 0,
        "cache_hit": False,
        "content": content,
    }


def _usage(n: int, **values: Any) -> dict[str, Any]:
    row = {
        "id": f"u{n:04d}",
        "request_id": f"req_{n}",
        "created_at": NOW - timedelta(minutes=n),
        "endpoint": "chat",
        "alias": "chat",
        "provider": "chaos",
        "status": 200,
        "latency_ms": 100.0 * n,
        "cost_pico": 1_000_000 * n,
        "metadata": None,
        "key_id": None,
        "team_id": None,
        "user_id": None,
        "cache_hit": False,  # every row has every key: executemany uses the first row's
    }
    row.update(values)
    return row


PROMPTS = {
    1: ("How do refunds work for a damaged parcel?", "Refunds take fourteen days."),
    2: ("Translate 'bonjour' please", "Hello."),
    3: ("Where is my parcel? Tracking ZX-991", "It left the depot; NEAR(zx) is fine."),
}


async def _ids(engine: Any, **filters: Any) -> list[str]:
    page = await queries.request_log(engine, LogFilters(**filters), limit=100)
    return [r["request_id"] for r in page.rows]


async def _search(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            await conn.execute(insert(api_keys), [{
                "id": "key_ops", "name": "ops", "key_hash": "h" * 64, "key_prefix": "ph-x",
                "scopes": ["inference"], "budget_period": "total", "metadata": {"team": "ops"},
                "created_at": NOW,
            }])  # fmt: skip
            await conn.execute(
                insert(teams),
                [{"id": "team_1", "name": "payments", "budget_period": "total", "created_at": NOW}],
            )
            await conn.execute(
                insert(users),
                [{"id": "user_1", "name": "ada", "budget_period": "total", "created_at": NOW}],
            )
            await conn.execute(
                insert(traces), [_trace(n, _content(*p)) for n, p in PROMPTS.items()]
            )
            await conn.execute(insert(traces), [_trace(4, None)])  # capture off: no content
            await conn.execute(insert(usage_records), [
                _usage(1, metadata={"tags": ["billing", "vip"], "user": "bob"}),
                _usage(2, team_id="team_1", user_id="user_1", metadata={"tags": "billing"}),
                _usage(3, key_id="key_ops", cache_hit=True),
                _usage(4, metadata={"team": "ops", "tags": ["vip"]}),
            ])  # fmt: skip

        # Words in a prompt or an answer, any case; every word must appear.
        assert await _ids(engine, q="refunds") == ["req_1"]
        assert await _ids(engine, q="PARCEL") == ["req_1", "req_3"]
        assert await _ids(engine, q="parcel tracking") == ["req_3"]
        assert await _ids(engine, q="fourteen") == ["req_1"]  # the response is searched too
        assert await _ids(engine, q="parcel bonjour") == []
        assert await _ids(engine, q="messages") == []  # JSON keys are not content
        assert await _ids(engine, q='NEAR(zx) "*') == ["req_3"]  # operators are plain words

        # Combined with the other filters, and each filter kind alone.
        assert await _ids(engine, q="parcel", cache="hit") == ["req_3"]
        assert await _ids(engine, tag="billing") == ["req_1", "req_2"]  # list or one string
        assert await _ids(engine, tag="vip") == ["req_1", "req_4"]
        assert await _ids(engine, team="payments") == ["req_2"]  # a team entity by name
        assert await _ids(engine, team="team_1") == ["req_2"]
        assert await _ids(engine, team="ops") == ["req_3", "req_4"]  # key or request metadata
        assert await _ids(engine, user="ada") == ["req_2"]
        assert await _ids(engine, user="bob") == ["req_1"]
        assert await _ids(engine, latency_min=200.0, latency_max=300.0) == ["req_2", "req_3"]
        assert await _ids(engine, cost_min="0.000003") == ["req_3", "req_4"]
        assert await _ids(engine, cost_max="0.000001") == ["req_1"]

        # Sort orders, and cursors that page through each order without gaps or repeats.
        assert await _ids(engine, sort="latency", order="desc") == [
            f"req_{n}" for n in (4, 3, 2, 1)
        ]
        assert await _ids(engine, sort="cost", order="asc") == [f"req_{n}" for n in (1, 2, 3, 4)]
        assert await _ids(engine, sort="time", order="asc") == [f"req_{n}" for n in (4, 3, 2, 1)]
        for sort in ("time", "latency", "cost"):
            for order in ("asc", "desc"):
                f = LogFilters(sort=sort, order=order)
                seen, cursor = [], None
                while True:
                    page = await queries.request_log(engine, f, cursor, limit=1)
                    seen += [r["request_id"] for r in page.rows]
                    if page.next_cursor is None:
                        break
                    cursor = queries.decode_position(f, page.next_cursor)
                assert seen == await _ids(engine, sort=sort, order=order), (sort, order)

        # Erased content (privacy erase sets it to NULL) and pruned traces are not found.
        async with engine.begin() as conn:
            await conn.execute(
                update(traces).where(traces.c.trace_id == f"{1:032x}").values(content=None)
            )
            await conn.execute(delete(traces).where(traces.c.trace_id == f"{3:032x}"))
        assert await _ids(engine, q="parcel") == []
        assert await _ids(engine, q="refunds") == []
        assert await _ids(engine, q="bonjour") == ["req_2"]

        # Traces stored before the migration are searchable after it.
        async with engine.begin() as conn:
            previous = MIGRATION.down_revision
            await conn.run_sync(lambda c: command.downgrade(_alembic_config(c), previous))
            await conn.execute(insert(traces), [_trace(5, _content("an old kiwi", "ok"))])
        await migrate(engine)
        async with engine.begin() as conn:
            await conn.execute(insert(usage_records), [_usage(5)])
        assert await _ids(engine, q="kiwi") == ["req_5"]
    finally:
        await engine.dispose()


def test_search_filters_and_sorting(store_url: str) -> None:
    asyncio.run(_search(store_url))


def test_viewers_may_not_search_and_bad_values_are_messages() -> None:
    viewer = parse_filters({"q": "secret", "team": "ops"}, may_search=False)
    assert viewer.filters.q is None and viewer.filters.team == "ops"
    assert viewer.errors == ["Your role may not search message content; the other filters apply."]
    bad = parse_filters({
        "q": "!!!", "latency_min": "fast", "cost_max": "-1", "sort": "name", "order": "up",
        "range": "2w",
    })  # fmt: skip
    assert len(bad.errors) == 6, bad.errors
    f = bad.filters
    assert (f.q, f.latency_min, f.cost_max, f.sort, f.order, f.range) == (
        None, None, None, "time", "desc", ""
    )  # fmt: skip


def test_time_range_presets_and_hourly_custom_ranges() -> None:
    day = parse_filters({"range": "24h"}).filters
    assert day.since is not None and abs(datetime.now(UTC) - timedelta(hours=24) - day.since) < (
        timedelta(minutes=1)
    )
    assert ("range", "24h") in day.query_items() and day.until is None
    legacy = parse_filters({"since": "7d"}).filters  # old links keep working
    assert legacy.range == "7d"
    custom = parse_filters(
        {"range": "custom", "since": "2025-03-01T09:47", "until": "2025-03-01T12:05"}
    ).filters
    assert custom.since == datetime(2025, 3, 1, 9, tzinfo=UTC)  # floored to the hour
    assert custom.until == datetime(2025, 3, 1, 12, tzinfo=UTC)
    backwards = parse_filters({"range": "custom", "since": "2025-03-02", "until": "2025-03-01"})
    assert backwards.errors == ["The custom range's start must come before its end."]
