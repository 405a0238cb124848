"""Guard receipts as the console reads them: the request panel's rows, the guards page's
tallies, and the request log's guard filters, which must select exactly what was counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.console import queries, receipts
from pilothouse.console.guard_pages import GuardReport, tally_row
from pilothouse.guard import receipt as guard_receipt
from pilothouse.guard.state import GuardState
from pilothouse.store.tables import spans, traces, usage_records

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def state(*runs: tuple[str, str, str, dict[str, int]]) -> GuardState:
    st = GuardState(policy="strict", conversation="c")
    for guard, stage, verdict, entities in runs:
        st.record(guard=guard, type_=guard, stage=stage, segment="user[0]", verdict=verdict,
                  entities=entities, score=None, latency_ms=1.5)  # fmt: skip
    return st


def span_row(trace_id: str, st: GuardState) -> dict[str, Any]:
    return {
        "trace_id": trace_id, "span_id": "s" + trace_id[-15:], "name": "guard.enforcement",
        "kind": "internal", "source": "gateway", "start_ns": 0, "end_ns": 1, "status": "ok",
        "attributes": guard_receipt.span_attributes(st),
        "events": guard_receipt.span_events(st, 0),
    }  # fmt: skip


PASS: dict[str, int] = {}
REQUESTS = {
    "r1": state(("pii", "input", "pseudonymize", {"EMAIL_ADDRESS": 2}),
                ("secrets", "input", "pass", PASS)),
    "r2": state(("pii", "input", "pass", {}), ("secrets", "input", "block", {"API_KEY": 1})),
    "r3": state(("pii", "output", "redact", {"EMAIL_ADDRESS": 1, "US_SSN": 1}),
                ("internal_ids", "input", "redact", {"INTERNAL_IDS": 1})),
    "r4": state(("pii", "input", "pass", {}), ("secrets", "input", "pass", {})),
    "r5": state(("pii", "input", "flag", {"US_SSN": 1}),
                ("pii", "input", "redact", {"EMAIL_ADDRESS": 1})),
}  # fmt: skip


async def write(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for n, (rid, st) in enumerate(REQUESTS.items()):
            tid = f"{n:032x}"
            at = NOW + timedelta(minutes=n)
            key = "key_a" if n % 2 == 0 else "key_b"
            await conn.execute(insert(usage_records).values(
                id=f"u{n}", request_id=rid, created_at=at, key_id=key, endpoint="chat",
                alias="chat", status=400 if rid == "r2" else 200, latency_ms=1.0))  # fmt: skip
            await conn.execute(insert(traces).values(
                trace_id=tid, request_id=rid, created_at=at, key_id=key, alias="chat"))  # fmt: skip
            await conn.execute(insert(spans).values(**span_row(tid, st)))


async def matching(engine: AsyncEngine, **params: str) -> set[str]:
    parsed = queries.parse_filters(params)
    assert parsed.errors == []
    page = await queries.request_log(engine, parsed.filters, limit=100)
    return {r["request_id"] for r in page.rows}


def test_the_panel_reads_every_run_and_never_a_value() -> None:
    st = REQUESTS["r3"]
    got = receipts.receipt([span_row("0" * 32, st)])
    assert got is not None
    assert (got.policy, got.verdict) == ("strict", "redact")
    assert [(r.guard, r.stage, r.verdict) for r in got.runs] == [
        ("pii", "output", "redact"), ("internal_ids", "input", "redact")]  # fmt: skip
    assert got.runs[0].entities == (("EMAIL_ADDRESS", 1), ("US_SSN", 1))
    assert got.runs[0].latency_ms == 1.5
    assert got.summary == st.summary()
    assert receipts.receipt([]) is None


def test_the_retrieval_panel_hides_the_query_from_whom_it_must() -> None:
    span = {"name": "rag.retrieval", "attributes": {
        "pilothouse.retrieval.collection": "handbook", "pilothouse.retrieval.mode": "dense",
        "pilothouse.retrieval.k": 3, "pilothouse.retrieval.returned": 1,
        "pilothouse.retrieval.underfilled": True, "pilothouse.retrieval.latency_ms": 2.5,
        "pilothouse.retrieval.source": "search", "pilothouse.retrieval.query": "salary bands",
        "retrieval.documents": '[{"id": "hr.md", "chunk_id": "hr.md#0", "score": 0.71}]',
    }}  # fmt: skip
    (shown,) = receipts.retrievals([span], show_query=True)
    assert (shown.collection, shown.k, shown.returned, shown.underfilled) == (
        "handbook",
        3,
        1,
        True,
    )
    assert shown.query == "salary bands"
    assert [(h.rank, h.document_id, h.chunk_id, h.score) for h in shown.hits] == [
        (1, "hr.md", "hr.md#0", 0.71)]  # fmt: skip
    (hidden,) = receipts.retrievals([span], show_query=False)
    assert hidden.query is None and hidden.hits == shown.hits


def test_tallies_count_requests_at_the_summary_grain() -> None:
    report = GuardReport()
    for n, st in enumerate(REQUESTS.values()):
        row = {"created_at": NOW, "key_id": "key_a" if n % 2 == 0 else "key_b", "alias": "chat",
               "events": guard_receipt.span_events(st, 0)}  # fmt: skip
        tally_row(report, row, timedelta(hours=1))
    assert report.guarded == 5
    assert dict(report.totals) == {"pseudonymize": 1, "block": 1, "redact": 2}
    assert report.by_guard["pii"].requests == 5
    # r5: pii flagged then redacted in one stage -> the stage's verdict is redact
    assert dict(report.by_guard["pii"].actions) == {"pseudonymize": 1, "redact": 2}
    assert report.by_entity["EMAIL_ADDRESS"].requests == 3
    assert report.by_entity["EMAIL_ADDRESS"].found == 4
    assert report.by_key["key_a"].actions["redact"] == 2  # r3 and r5
    (bucket,) = report.buckets.values()
    assert dict(bucket) == {"pseudonymize": 1, "block": 1, "redact": 2}


async def test_log_filters_select_exactly_the_counted_requests(engine: AsyncEngine) -> None:
    await write(engine)
    assert await matching(engine, guard="secrets", verdict="block") == {"r2"}
    assert await matching(engine, guard="pii", verdict="redact") == {"r3", "r5"}
    assert await matching(engine, guard="pii", verdict="flag") == set()  # r5's stage: redact
    assert await matching(engine, guard="pii") == {"r1", "r3", "r5"}  # acted
    assert await matching(engine, verdict="acted") == {"r1", "r2", "r3", "r5"}
    assert await matching(engine, verdict="pass") == {"r1", "r2", "r4"}
    assert await matching(engine, entity="EMAIL_ADDRESS") == {"r1", "r3", "r5"}
    assert await matching(engine, entity="SSN") == set()  # not a suffix match of US_SSN
    assert await matching(engine, entity="US_SSN") == {"r3", "r5"}
    assert await matching(engine, guard="internal_ids") == {"r3"}  # "_" is not a wildcard
    assert await matching(engine, guard="internal%") == set()
    assert await matching(engine, verdict="redact", key="key_a") == {"r3", "r5"}
    bad = queries.parse_filters({"verdict": "maybe"})
    assert bad.errors and bad.filters.verdict is None


def test_what_else_a_guard_recorded_is_shown_beside_its_run() -> None:
    st = GuardState(policy="strict", conversation="c")
    info = {"classifier": "judge", "classifier_ms": 2.5, "classifier_request": "req_01",
            "error": "TimeoutError"}  # fmt: skip
    st.record(guard="content", type_="content", stage="output", segment="output", verdict="error",
              latency_ms=3.0, info=info)  # fmt: skip
    got = receipts.receipt([span_row("1" * 32, st)])
    assert got is not None
    (run,) = got.runs
    assert dict(run.extra) == {
        "classifier": "judge", "classifier_ms": "2.5", "classifier_request": "req_01",
        "error": "TimeoutError",
    }  # fmt: skip
    assert run.classifier_request == "req_01"
    assert run.verdict == "error" and run.latency_ms == 3.0
