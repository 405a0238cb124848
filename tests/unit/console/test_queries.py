"""The request log's filters and cursors against a real (SQLite) store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.console import queries
from pilothouse.console.queries import LogFilters, decode_cursor, encode_cursor, parse_filters
from tests.unit.console.sample import TRACE_ID, TRACED, XSS_REQUEST, Sample


def test_filters_parse_from_the_query_string_and_bad_values_become_messages() -> None:
    parsed = parse_filters(
        {
            "key": " key_1 ",
            "model": "chat",
            "status": "5xx",
            "since": "24h",
            "until": "2025-01-31T12:00",
        }
    )
    f = parsed.filters
    assert parsed.errors == []
    assert (f.key_id, f.alias, f.status) == ("key_1", "chat", "5xx")
    assert f.since is not None and abs(
        datetime.now(UTC) - timedelta(hours=24) - f.since
    ) < timedelta(minutes=1)
    assert f.until == datetime(2025, 1, 31, 12, tzinfo=UTC)
    assert ("since", "24h") in f.query_items() and f.active
    bad = parse_filters(
        {"status": "teapot", "since": "yesterday-ish", "until": "2025-02-01T10:00+02:00"}
    )
    assert len(bad.errors) == 2
    assert bad.filters.status is None and bad.filters.since is None
    assert bad.filters.until == datetime(2025, 2, 1, 8, tzinfo=UTC)  # offsets become UTC
    assert not parse_filters({}).filters.active


def test_cursors_round_trip_and_reject_anything_else() -> None:
    at = datetime(2025, 5, 1, 12, 30, 1, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, "ur_01")) == (at, "ur_01")
    assert decode_cursor(encode_cursor(at.replace(tzinfo=None), "ur_01")) == (at, "ur_01")
    for junk in ("", "!!!", "bm90IGEgY3Vyc29y", encode_cursor(at, "x")[:-4]):
        with pytest.raises(ValueError):
            decode_cursor(junk)


async def ids(engine: AsyncEngine, **filters: object) -> list[str]:
    page = await queries.request_log(engine, LogFilters(**filters), limit=100)  # type: ignore[arg-type]
    return [r["request_id"] for r in page.rows]


async def test_every_filter_narrows_the_log(engine: AsyncEngine, sample: Sample) -> None:
    everything = await ids(engine)
    assert everything[:2] == [TRACED, XSS_REQUEST] and len(everything) == 8  # newest first
    checkout = sample.keys["checkout-service"]
    assert await ids(engine, key_id=checkout) == [
        "req_traced_0001",
        "req_sample_0003",
        "req_sample_0005",
        "req_sample_0008",
    ]
    assert await ids(engine, alias="summarize") == [
        "req_sample_0003",
        "req_sample_0004",
        "req_sample_0006",
    ]
    assert await ids(engine, status="error") == [
        "req_sample_0003",
        "req_sample_0004",
        "req_sample_0007",
    ]
    assert await ids(engine, status="4xx") == ["req_sample_0003", "req_sample_0007"]
    assert await ids(engine, status="5xx") == ["req_sample_0004"]
    assert await ids(engine, status="429") == ["req_sample_0003"]
    assert len(await ids(engine, status="ok")) == 5
    assert await ids(engine, user="alice") == [TRACED, "req_sample_0003"]
    assert await ids(engine, user="<b>mallory</b>") == [XSS_REQUEST]
    assert await ids(engine, feature="digest") == ["req_sample_0004", "req_sample_0006"]
    since = sample.now - timedelta(hours=30)
    assert await ids(engine, since=since) == [
        TRACED,
        XSS_REQUEST,
        "req_sample_0003",
        "req_sample_0004",
    ]
    until = sample.now - timedelta(hours=1, seconds=1)
    assert await ids(engine, since=since, until=until) == [
        XSS_REQUEST,
        "req_sample_0003",
        "req_sample_0004",
    ]
    assert await ids(engine, user="alice", alias="summarize", status="429", key_id=checkout) == [
        "req_sample_0003"
    ]
    assert await ids(engine, user="nobody") == []


async def test_pages_walk_the_whole_log_without_gaps_or_repeats(
    engine: AsyncEngine, sample: Sample
) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await queries.request_log(engine, LogFilters(), cursor, limit=3)
        seen += [r["request_id"] for r in page.rows]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = decode_cursor(page.next_cursor)
    assert pages == 3
    assert seen == await ids(engine)


async def test_rows_in_the_same_instant_page_by_id(engine: AsyncEngine, sample: Sample) -> None:
    first = await queries.request_log(engine, LogFilters(), limit=1)
    at = first.rows[0]["created_at"]
    cursor = (at if at.tzinfo else at.replace(tzinfo=UTC), "ur_9999")  # same time, later id
    page = await queries.request_log(engine, LogFilters(), cursor, limit=100)
    assert page.rows[0]["request_id"] == TRACED


async def test_the_log_knows_which_requests_have_a_trace(
    engine: AsyncEngine, sample: Sample
) -> None:
    page = await queries.request_log(engine, LogFilters(), limit=100)
    traced = {r["request_id"]: r["trace_id"] for r in page.rows}
    assert traced[TRACED] == TRACE_ID
    assert traced["req_sample_0005"] is None


async def test_a_request_loads_with_its_trace_and_spans(
    engine: AsyncEngine, sample: Sample
) -> None:
    by_request = await queries.load_request(engine, TRACED)
    by_trace = await queries.load_trace(engine, TRACE_ID)
    for record in (by_request, by_trace):
        assert record.found
        assert record.usage is not None and record.usage["cost_pico"] == 1_234_567_891
        assert record.trace is not None and record.trace["prompt_version"] == "7"
        assert len(record.spans) == 8
        starts = [s["start_ns"] for s in record.spans]
        assert starts == sorted(starts)
    assert [(f["success"], f["comment"]) for f in by_request.feedback] == [(True, "resolved")]
    assert by_trace.feedback == by_request.feedback
    untraced = await queries.load_request(engine, "req_sample_0005")
    assert untraced.found and untraced.trace is None and untraced.spans == []
    assert not (await queries.load_request(engine, "nope")).found
    assert not (await queries.load_trace(engine, "0" * 32)).found


async def test_keys_are_listed_with_their_team(engine: AsyncEngine, sample: Sample) -> None:
    keys = await queries.list_keys(engine)
    assert [(k.name, k.team) for k in keys] == [
        ("checkout-service", "payments"),
        ("search <i>beta</i>", "search"),
    ]
