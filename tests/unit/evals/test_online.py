"""Online evaluation: deterministic sampling, a bounded queue that drops, scores to the sink."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pilothouse.evals.errors import EvalError
from pilothouse.evals.online import (
    OnlineEvaluator,
    OnlineScore,
    SamplingRule,
    parse_online_config,
    sample_point,
    store_sink,
)
from pilothouse.evals.scorers.base import build_scorer
from pilothouse.store.db import create_engine, migrate


def reply(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


REQUEST = {"model": "support", "messages": [{"role": "user", "content": "Where is my order?"}]}


class Collect:
    def __init__(self) -> None:
        self.scores: list[OnlineScore] = []

    async def __call__(self, scores: list[OnlineScore]) -> None:
        self.scores.extend(scores)


def rule(tmp_path: Path, alias: str = "support*", rate: float = 1.0) -> SamplingRule:
    scorers = [
        build_scorer(
            {
                "type": "regex",
                "pattern": "sorry",
                "negate": True,
                "ignore_case": True,
                "name": "no_apology",
            },
            tmp_path,
            "t",
        ),
        build_scorer({"type": "exact"}, tmp_path, "t"),  # needs expected: skipped online
    ]
    return SamplingRule(alias, rate, scorers)


def test_sampling_is_a_stable_share_of_request_ids(tmp_path: Path) -> None:
    evaluator = OnlineEvaluator([rule(tmp_path, rate=0.2)], Collect())
    ids = [f"req_{i:06d}" for i in range(5000)]
    chosen = [i for i in ids if evaluator.rule_for(i, "support-eu") is not None]
    assert 0.17 < len(chosen) / len(ids) < 0.23
    again = [i for i in ids if evaluator.rule_for(i, "support-eu") is not None]
    assert chosen == again  # same decision on every replica and replay
    assert all(sample_point(i) < 0.2 for i in chosen)
    assert evaluator.rule_for(chosen[0], "billing") is None  # alias does not match


async def test_sampled_requests_are_scored_off_the_hot_path(tmp_path: Path) -> None:
    sink = Collect()
    seen: list[OnlineScore] = []
    evaluator = OnlineEvaluator([rule(tmp_path)], sink, on_score=seen.append)
    await evaluator.start()
    assert evaluator.maybe_sample("req_1", "support", REQUEST, reply("Sorry, I can't see it."))
    assert evaluator.maybe_sample("req_2", "support", REQUEST, reply("It ships tomorrow."))
    assert not evaluator.maybe_sample("req_3", "billing", REQUEST, reply("x"))
    await evaluator.stop()
    by_request = {s.request_id: s for s in sink.scores}
    assert by_request["req_1"].passed is False and by_request["req_1"].scorer == "no_apology"
    assert by_request["req_2"].passed is True
    assert len(sink.scores) == 2  # `exact` has no expected online: skipped, not stored
    assert seen == sink.scores
    assert (evaluator.stats.sampled, evaluator.stats.scored, evaluator.stats.dropped) == (2, 2, 0)


async def test_a_full_queue_drops_instead_of_blocking(tmp_path: Path) -> None:
    sink = Collect()
    evaluator = OnlineEvaluator([rule(tmp_path)], sink, queue_size=2)
    # Workers not started: nothing drains the queue.
    results = [evaluator.maybe_sample(f"r{i}", "support", REQUEST, reply("ok")) for i in range(5)]
    assert results == [True, True, False, False, False]
    assert (evaluator.stats.sampled, evaluator.stats.dropped) == (2, 3)
    await evaluator.start()
    await evaluator.stop(drain=True)
    assert len(sink.scores) == 2


async def test_a_failing_sink_is_counted_and_does_not_stop_the_worker(tmp_path: Path) -> None:
    calls = 0

    async def flaky(scores: list[OnlineScore]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("store down")

    evaluator = OnlineEvaluator([rule(tmp_path)], flaky)
    await evaluator.start()
    evaluator.maybe_sample("a", "support", REQUEST, reply("ok"))
    evaluator.maybe_sample("b", "support", REQUEST, reply("ok"))
    await evaluator.stop()
    assert evaluator.stats.failed == 1 and evaluator.stats.scored == 1
    # Hooks must never raise into the request path, even with a malformed response.
    assert evaluator.maybe_sample("c", "support", REQUEST, {"weird": True}) is True


async def test_store_sink_writes_scores(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'o.db'}")
    await migrate(engine)
    try:
        evaluator = OnlineEvaluator([rule(tmp_path)], store_sink(engine))
        await evaluator.start()
        evaluator.maybe_sample("req_x", "support", REQUEST, reply("Sorry!"))
        await evaluator.stop()
        async with engine.connect() as conn:
            from sqlalchemy import select

            from pilothouse.evals.tables import eval_online_scores as t

            rows = (await conn.execute(select(t.c.request_id, t.c.scorer, t.c.passed))).all()
        assert [tuple(r) for r in rows] == [("req_x", "no_apology", False)]
    finally:
        await engine.dispose()


def test_online_config_uses_the_suite_scorer_syntax(tmp_path: Path) -> None:
    config = parse_online_config(
        {
            "rules": [
                {
                    "alias": "support-*",
                    "rate": 0.05,
                    "scorers": [{"type": "regex", "pattern": "sorry", "negate": True}],
                }
            ],
            "queue_size": 50,
        },
        tmp_path,
    )
    assert config.rules[0].rate == 0.05 and config.queue_size == 50
    assert config.rules[0].scorers[0].name == "regex"
    with pytest.raises(EvalError, match=r"rules\[0\].rate"):
        parse_online_config({"rules": [{"rate": 2, "scorers": []}]}, tmp_path)


def test_maybe_sample_is_synchronous() -> None:
    assert not asyncio.iscoroutinefunction(OnlineEvaluator.maybe_sample)
