"""Online evaluation: score a share of live traffic with the same scorers, off the hot path.

The gateway calls :meth:`OnlineEvaluator.maybe_sample` after a response is
sent. It is O(1), never awaits, never raises and never blocks: the sampling
decision is a hash of the request id (so replicas agree and a replay samples
the same requests), and a sampled request goes into a bounded queue — when
the queue is full the sample is dropped and counted, never waited for.
Worker tasks score queued requests and hand the scores to a sink (the store
table ``eval_online_scores`` by default) and to an optional per-score
callback, which is where metrics export and rollouts hook in.

Config shape the gateway can adopt (``online_eval:`` in pilothouse.yaml)::

    rules:
      - {alias: "support-*", rate: 0.05, scorers: [{type: regex, pattern: "sorry", negate: true}]}
    queue_size: 1000
    workers: 1
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.evals.errors import EvalError
from pilothouse.evals.model import Case
from pilothouse.evals.scorers.base import ChatFn, ScoreContext, Scorer, build_scorer
from pilothouse.evals.scoring import score_output
from pilothouse.evals.store import new_id
from pilothouse.evals.tables import eval_online_scores

log = logging.getLogger("pilothouse.evals.online")


@dataclass(frozen=True, slots=True)
class SamplingRule:
    alias: str  # fnmatch pattern, e.g. "support-*" or "*"
    rate: float
    scorers: list[Scorer[Any]]


@dataclass(frozen=True, slots=True)
class OnlineScore:
    request_id: str
    alias: str | None
    scorer: str
    value: float | None
    passed: bool | None
    label: str | None
    explanation: str
    error: str | None
    created_at: datetime


@dataclass(slots=True)
class OnlineStats:
    sampled: int = 0
    dropped: int = 0
    scored: int = 0
    failed: int = 0


@dataclass(slots=True)
class _Job:
    request_id: str
    alias: str | None
    rule: SamplingRule
    request: dict[str, Any]
    response: dict[str, Any]


Sink = Callable[[list[OnlineScore]], Awaitable[None]]


def sample_point(request_id: str) -> float:
    """A stable number in [0, 1) per request id: the same on every replica and replay."""
    return zlib.crc32(request_id.encode()) / 2**32


def completion_text(response: dict[str, Any]) -> str | None:
    try:
        content = response["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return content if isinstance(content, str) else None


class OnlineEvaluator:
    def __init__(
        self,
        rules: list[SamplingRule],
        sink: Sink,
        *,
        queue_size: int = 1000,
        workers: int = 1,
        chat: ChatFn | None = None,
        on_score: Callable[[OnlineScore], None] | None = None,
    ) -> None:
        self.rules = rules
        self.sink = sink
        self.chat = chat
        self.on_score = on_score
        self.stats = OnlineStats()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(queue_size)
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []

    def rule_for(self, request_id: str, alias: str | None) -> SamplingRule | None:
        for rule in self.rules:
            if fnmatch.fnmatchcase(alias or "", rule.alias):
                return rule if sample_point(request_id) < rule.rate else None
        return None

    def maybe_sample(
        self, request_id: str, alias: str | None, request: dict[str, Any], response: dict[str, Any]
    ) -> bool:
        """Queue this request for scoring if sampled; True when queued. Never blocks or raises."""
        try:
            rule = self.rule_for(request_id, alias)
            if rule is None:
                return False
            self._queue.put_nowait(_Job(request_id, alias, rule, request, response))
        except asyncio.QueueFull:
            self.stats.dropped += 1
            return False
        except Exception:  # a hook must never break the request that called it
            log.exception("online eval sampling failed for %s", request_id)
            return False
        self.stats.sampled += 1
        return True

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"online-eval-{i}") for i in range(self._workers)
        ]

    async def stop(self, *, drain: bool = True) -> None:
        """Score what is queued (``drain``), then stop the workers."""
        if drain and self._tasks:
            await self._queue.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self.score(job)
            except Exception as exc:
                self.stats.failed += 1
                log.warning("online eval of %s failed: %s", job.request_id, exc)
            finally:
                self._queue.task_done()

    async def score(self, job: _Job) -> list[OnlineScore]:
        output = completion_text(job.response)
        if output is None:
            return []
        messages = job.request.get("messages") or []
        case = Case(id=job.request_id, input=list(messages), metadata={"alias": job.alias})
        verdicts = await score_output(job.rule.scorers, case, output, ScoreContext(chat=self.chat))
        now = datetime.now(UTC)
        scores = [
            OnlineScore(
                job.request_id,
                job.alias,
                v.scorer,
                v.value,
                v.passed,
                v.label,
                v.explanation,
                v.error,
                now,
            )
            for v in verdicts
            if v.skipped is None
        ]
        if scores:
            await self.sink(scores)
        for score in scores:
            self.stats.scored += 1
            if self.on_score is not None:
                self.on_score(score)
        return scores


def store_sink(engine: AsyncEngine) -> Sink:
    """Write online scores to ``eval_online_scores`` (one insert per scored request)."""

    async def sink(scores: list[OnlineScore]) -> None:
        rows = [
            {
                "id": new_id(),
                "request_id": s.request_id,
                "alias": s.alias,
                "scorer": s.scorer,
                "value": s.value,
                "passed": s.passed,
                "label": s.label,
                "explanation": s.explanation,
                "error": s.error,
                "created_at": s.created_at,
            }
            for s in scores
        ]
        async with engine.begin() as conn:
            await conn.execute(eval_online_scores.insert(), rows)

    return sink


@dataclass(frozen=True, slots=True)
class OnlineConfig:
    rules: list[SamplingRule] = field(default_factory=list)
    queue_size: int = 1000
    workers: int = 1


def parse_online_config(
    raw: dict[str, Any], base_dir: Path, where: str = "online_eval"
) -> OnlineConfig:
    """Validate the ``online_eval:`` mapping (same scorer syntax as suites)."""
    if not isinstance(raw, dict):
        raise EvalError(f"{where}: expected a mapping with `rules`")
    rules = []
    for i, rule in enumerate(raw.get("rules") or []):
        at = f"{where}.rules[{i}]"
        if not isinstance(rule, dict) or not isinstance(rule.get("scorers"), list):
            raise EvalError(f"{at}: expected {{alias, rate, scorers: [...]}}")
        rate = rule.get("rate", 0.0)
        if not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise EvalError(f"{at}.rate: must be a number between 0 and 1")
        scorers = [
            build_scorer(s, base_dir, f"{at}.scorers[{j}]") for j, s in enumerate(rule["scorers"])
        ]
        rules.append(SamplingRule(str(rule.get("alias", "*")), float(rate), scorers))
    queue_size, workers = raw.get("queue_size", 1000), raw.get("workers", 1)
    if (
        not isinstance(queue_size, int)
        or queue_size < 1
        or not isinstance(workers, int)
        or workers < 1
    ):
        raise EvalError(f"{where}: queue_size and workers must be integers >= 1")
    return OnlineConfig(rules, queue_size, workers)
