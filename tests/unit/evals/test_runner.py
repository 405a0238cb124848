"""The runner against a Python target and a SQLite store: storing, caching, resuming."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pilothouse.evals.errors import TargetUnavailable
from pilothouse.evals.runner import RunOptions, run_suite, run_workers
from pilothouse.evals.store import EvalStore
from pilothouse.evals.suite import load_suite
from pilothouse.evals.tables import eval_results
from pilothouse.store.db import create_engine, migrate

APP = """
calls = []
broken = set()
down_after = [None]

async def answer(question, ctx=None):
    calls.append(question)
    if down_after[0] is not None and len(calls) > down_after[0]:
        from pilothouse.evals.errors import TargetUnavailable
        raise TargetUnavailable("service is down")
    if question in broken:
        raise RuntimeError("flaky backend")
    return {"q1": "Paris", "q2": "Lyon", "q3": "1969", "q4": "Rome", "q5": "42"}[question]
"""

SUITE = """
name: app-qa
target: {python: "app_under_test:answer"}
dataset:
  - {id: a, input: q1, expected: Paris, metadata: {topic: geo}}
  - {id: b, input: q2, expected: Paris, metadata: {topic: geo}}
  - {id: c, input: q3, expected: "1969", metadata: {topic: history}}
  - {id: d, input: q4, expected: Rome, metadata: {topic: geo}}
  - {id: e, input: q5, expected: 42, metadata: {topic: math}}
scorers: [{type: exact}, {type: regex, pattern: "\\\\d+", name: digits}]
slices: [metadata.topic]
concurrency: 2
gates:
  - {metric: exact.pass_rate, min: 0.7}
"""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EvalStore]:
    engine = create_engine(f"sqlite:///{tmp_path / 'evals.db'}")
    await migrate(engine)
    yield EvalStore(engine)
    await engine.dispose()


@pytest.fixture
def app_suite(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "app_under_test.py").write_text(APP)
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    suite = load_suite(path)
    module = suite.target.fn.__globals__  # type: ignore[union-attr]
    module["calls"].clear()
    return suite, module


async def stored(store: EvalStore, run_id: str) -> int:
    async with store.engine.connect() as conn:
        query = select(func.count()).where(eval_results.c.run_id == run_id)
        return int((await conn.execute(query)).scalar_one())


async def test_a_run_is_stored_scored_and_gated(store: EvalStore, app_suite) -> None:  # type: ignore[no-untyped-def]
    suite, app = app_suite
    seen = []
    outcome = await run_suite(suite, store, None, RunOptions(on_sample=seen.append))
    assert outcome.exit_code == 0  # 4 of 5 exact
    assert len(seen) == 5 and await stored(store, outcome.record.info.id) == 5
    stat = outcome.summary.stat("exact.pass_rate")
    assert stat is not None and (stat.n, stat.mean) == (5, 0.8)
    assert outcome.summary.stat("exact.pass_rate", "metadata.topic=geo").mean == pytest.approx(
        2 / 3
    )  # type: ignore[union-attr]
    sample = next(s for s in outcome.record.samples if s.case_id == "b")
    assert sample.verdict("exact").explanation == "expected 'Paris', got 'Lyon'"  # type: ignore[union-attr]
    assert sample.events[0]["name"] == "gen_ai.evaluation.result"
    assert sample.events[0]["attributes"]["gen_ai.evaluation.name"] == "exact"
    assert sample.events[0]["trace_id"] == sample.trace_id and len(sample.trace_id or "") == 32
    info = await store.run_info(outcome.record.info.id)
    assert info.status == "completed"
    assert info.summary["gates"][0]["status"] == "pass"
    assert sorted(app["calls"]) == ["q1", "q2", "q3", "q4", "q5"]


async def test_outputs_are_cached_across_runs_unless_disabled(store: EvalStore, app_suite) -> None:  # type: ignore[no-untyped-def]
    suite, app = app_suite
    await run_suite(suite, store, None)
    again = await run_suite(suite, store, None)
    assert len(app["calls"]) == 5  # nothing called twice
    assert all(s.cached for s in again.record.samples)
    assert again.summary.stat("exact.pass_rate").mean == 0.8  # type: ignore[union-attr]
    await run_suite(suite, store, None, RunOptions(use_cache=False))
    assert len(app["calls"]) == 10


async def test_target_errors_make_the_run_incomplete_and_resume_retries_them(
    store: EvalStore,
    app_suite,  # type: ignore[no-untyped-def]
) -> None:
    suite, app = app_suite
    app["broken"].add("q3")
    first = await run_suite(suite, store, None)
    assert first.exit_code == 2
    assert first.problems and "1 of 5 samples failed" in first.problems[0]
    assert f"--resume {first.record.info.id}" in first.problems[0]
    failed = next(s for s in first.record.samples if s.case_id == "c")
    assert failed.error == "app_under_test:answer raised RuntimeError: flaky backend"
    app["broken"].clear()
    app["calls"].clear()
    resumed = await run_suite(suite, store, None, RunOptions(resume=first.record.info.id))
    assert app["calls"] == ["q3"]  # only the failed case ran again
    assert resumed.exit_code == 0 and resumed.record.info.id == first.record.info.id
    assert await stored(store, first.record.info.id) == 5


async def test_an_unavailable_target_stops_the_run_and_keeps_finished_cases(
    store: EvalStore,
    app_suite,  # type: ignore[no-untyped-def]
) -> None:
    suite, app = app_suite
    app["down_after"][0] = 2
    with pytest.raises(TargetUnavailable, match="service is down"):
        await run_suite(suite, store, None, RunOptions(use_cache=False))
    runs = await store.list_runs()
    assert runs[0].status == "failed"
    kept = await stored(store, runs[0].id)
    assert kept == 2
    app["down_after"][0] = None
    app["calls"].clear()
    done = await run_suite(suite, store, None, RunOptions(resume=runs[0].id[:12]))
    assert len(app["calls"]) == 3 and done.exit_code == 0


async def test_limit_runs_the_first_cases(store: EvalStore, app_suite) -> None:  # type: ignore[no-untyped-def]
    suite, _app = app_suite
    outcome = await run_suite(suite, store, None, RunOptions(limit=2))
    assert sorted(outcome.record.cases) == ["a", "b"]
    assert outcome.record.info.n_cases == 2


async def test_run_workers_bounds_concurrency_and_raises_the_first_error() -> None:
    import asyncio

    active = peak = 0

    async def work(i: int) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0)
        active -= 1
        if i == 7:
            raise ValueError("seven")

    with pytest.raises(ValueError, match="seven"):
        await run_workers(range(20), 3, work)
    assert peak == 3
