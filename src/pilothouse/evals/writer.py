"""Group-committed result writing, so a finished case is on disk moments after it finishes.

Workers hand results to one writer task; it takes everything queued, looks up
exact costs for the batch's request ids in one ledger query, and commits the
results and cache entries in one transaction. Per-case commits would cost a
round trip each; one commit per run would lose everything on a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pilothouse.evals.errors import EvalError
from pilothouse.evals.model import Case, Sample
from pilothouse.evals.store import CacheRow, EvalStore

CostLookup = Callable[[list[str]], Awaitable[dict[str, int]]]


@dataclass(slots=True)
class _Item:
    case: Case
    sample: Sample
    cache_key: str | None


def judge_request_ids(sample: Sample) -> list[str]:
    ids: list[str] = []
    for verdict in sample.verdicts:
        ids += [str(r) for r in verdict.detail.get("request_ids", [])]
    return ids


def target_cache_value(sample: Sample) -> dict[str, Any]:
    return {
        "kind": "target",
        "text": sample.output,
        "request_ids": sample.request_ids,
        "trace_id": sample.trace_id,
        "input_tokens": sample.input_tokens,
        "output_tokens": sample.output_tokens,
        "cost_pico": sample.cost_pico,
        "latency_ms": sample.latency_ms,
    }


class ResultWriter:
    def __init__(self, store: EvalStore, run_id: str, costs: CostLookup | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.costs = costs
        self.written = 0
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._cache: list[CacheRow] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="eval-result-writer")

    def put(self, case: Case, sample: Sample, cache_key: str | None = None) -> None:
        self._check()
        self._queue.put_nowait(_Item(case, sample, cache_key))

    def cache_put(self, key: str, value: dict[str, Any]) -> None:
        self._cache.append((key, str(value.get("kind", "judge")), value))

    def _check(self) -> None:
        task = self._task
        if task is not None and task.done() and not task.cancelled() and task.exception():
            raise EvalError(f"cannot write eval results: {task.exception()}")

    async def close(self) -> None:
        """Write everything queued so far, then stop (also on cancellation)."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        task, self._task = self._task, None
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await task
            raise
        except Exception as exc:
            raise EvalError(f"cannot write eval results: {type(exc).__name__}: {exc}") from None

    async def _run(self) -> None:
        done = False
        while not done:
            item = await self._queue.get()
            batch: list[_Item] = []
            while item is not None:
                batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
            done = item is None
            if batch or self._cache:
                await self._flush(batch)

    async def _flush(self, batch: list[_Item]) -> None:
        await self._fill_costs([item.sample for item in batch])
        cache_rows, self._cache = self._cache, []
        for item in batch:
            sample = item.sample
            if item.cache_key and sample.error is None and not sample.cached:
                cache_rows.append((item.cache_key, "target", target_cache_value(sample)))
        await self.store.write(self.run_id, [(i.case, i.sample) for i in batch], cache_rows)
        self.written += len(batch)

    async def _fill_costs(self, samples: list[Sample]) -> None:
        if self.costs is None:
            return
        wanted = [r for s in samples if not s.cached and s.cost_pico is None for r in s.request_ids]
        judged = [r for s in samples for r in judge_request_ids(s)]
        if not wanted and not judged:
            return
        found = await self.costs(wanted + judged)
        for sample in samples:
            ids = sample.request_ids
            if (
                not sample.cached
                and sample.cost_pico is None
                and ids
                and all(r in found for r in ids)
            ):
                sample.cost_pico = sum(found[r] for r in ids)
            sample.scoring_cost_pico = sum(found.get(r, 0) for r in judge_request_ids(sample))
