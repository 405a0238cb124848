"""Run a suite: cases through the target, outputs through the scorers, results to the store.

Work is spread over ``concurrency`` workers; each finished sample goes to the
group-committing writer at once, so an interrupted run resumes where it
stopped (``resume=RUN_ID``), and the result cache (target + params + input)
lets even a fresh run skip outputs it already has. A :class:`TargetUnavailable`
from any case stops the whole run: there is no point sending 500 requests to
a gateway that refused the first.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from pilothouse import __version__
from pilothouse.evals.analysis import Summary, summarise
from pilothouse.evals.calls import CallInfo, TargetOutput, TargetSession
from pilothouse.evals.errors import EvalError, TargetUnavailable
from pilothouse.evals.events import sample_events
from pilothouse.evals.gates import GateResult, evaluate_gates, exit_code
from pilothouse.evals.link import GatewayLink
from pilothouse.evals.model import Case, RunInfo, RunRecord, Sample
from pilothouse.evals.reports.json_report import summary_json
from pilothouse.evals.review import enqueue_review
from pilothouse.evals.scorers.base import ScoreContext
from pilothouse.evals.scoring import score_output
from pilothouse.evals.store import EvalStore, new_id
from pilothouse.evals.suite import Suite
from pilothouse.evals.writer import ResultWriter

T = TypeVar("T")


@dataclass(slots=True)
class RunOptions:
    limit: int | None = None
    use_cache: bool = True
    resume: str | None = None
    baseline: RunRecord | None = None
    baseline_ref: str | None = None
    on_open: Callable[[RunInfo], None] | None = None  # the run exists (its id is known)
    on_start: Callable[[int, int], None] | None = None  # (samples to run, already done)
    on_sample: Callable[[Sample], None] | None = None


@dataclass(slots=True)
class RunOutcome:
    record: RunRecord
    summary: Summary
    gates: list[GateResult]
    exit_code: int
    problems: list[str] = field(default_factory=list)
    review_items: int = 0


async def run_workers(
    items: Iterable[T], concurrency: int, fn: Callable[[T], Awaitable[None]]
) -> None:
    """Run ``fn`` over ``items`` with at most ``concurrency`` in flight; the first error
    cancels the rest and is raised."""
    source = iter(items)

    async def worker() -> None:
        for item in source:
            await fn(item)

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def cache_key(session: TargetSession, case: Case, repeat: int) -> str:
    blob = orjson.dumps(
        {
            "v": 1,
            "target": session.fingerprint(),
            "params": session.params,
            "input": session.cache_payload(case),
            "repeat": repeat,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(blob).hexdigest()


class SuiteRun:
    """One execution (or resumption) of a suite."""

    def __init__(
        self, suite: Suite, store: EvalStore, link: GatewayLink | None, options: RunOptions
    ) -> None:
        self.suite = suite
        self.store = store
        self.link = link
        self.options = options
        self.cases = suite.cases[: options.limit] if options.limit else list(suite.cases)
        self.session = TargetSession(suite.target, link, dict(suite.spec.params))
        self.cached: dict[str, dict[str, Any]] = {}
        self.keys: dict[tuple[str, int], str] = {}
        self.info: RunInfo | None = None
        self.writer: ResultWriter | None = None

    async def open_run(self) -> tuple[RunInfo, set[tuple[str, int]]]:
        suite, options = self.suite, self.options
        if options.resume:
            info = await self.store.run_info(await self.store.resolve_run_id(options.resume))
            if info.suite != suite.name:
                raise EvalError(f"run {info.id} is of suite {info.suite!r}, not {suite.name!r}")
            if info.suite_hash != suite.hash:
                raise EvalError(
                    f"suite {suite.name!r} changed since run {info.id} started; start a new run "
                    "(unchanged cases come from the cache)"
                )
            done = await self.store.finished_samples(info.id)
            info.status, info.baseline_id = "running", options.baseline_ref or info.baseline_id
            await self.store.save_run(info)
            return info, done
        info = RunInfo(
            id=new_id("run_"),
            suite=suite.name,
            suite_hash=suite.hash,
            suite_path=str(suite.path),
            target=suite.target.describe(),
            params=dict(suite.spec.params),
            scorers=[s.name for s in suite.scorers],
            slices=list(suite.spec.slices),
            repeats=suite.spec.repeats,
            n_cases=len(self.cases),
            status="running",
            gateway=self.link.description if self.link else "",
            version=__version__,
            started_at=datetime.now(UTC),
            baseline_id=options.baseline_ref,
            case_order=[c.id for c in self.cases],
            bootstrap=suite.spec.bootstrap,
            seed=suite.spec.seed,
        )
        await self.store.create_run(info)
        return info, set()

    async def execute(self) -> RunOutcome:
        info, done = await self.open_run()
        self.info = info
        if self.options.on_open:
            self.options.on_open(info)
        todo = [
            (case, r)
            for case in self.cases
            for r in range(self.suite.spec.repeats)
            if (case.id, r) not in done
        ]
        if self.options.on_start:
            self.options.on_start(len(todo), len(done))
        try:
            async with self.session:
                await self._prefetch_cache(todo)
                self.writer = ResultWriter(
                    self.store, info.id, self.link.costs if self.link else None
                )
                self.writer.start()
                try:
                    await run_workers(todo, self.suite.spec.concurrency, self._one)
                finally:
                    await self.writer.close()
                    for scorer in self.suite.scorers:  # scorers holding resources (retrieval)
                        close = getattr(scorer, "aclose", None)
                        if close is not None:
                            await close()
        except BaseException as exc:
            info.status = "interrupted" if isinstance(exc, asyncio.CancelledError) else "failed"
            info.finished_at = datetime.now(UTC)
            await asyncio.shield(self.store.save_run(info))
            raise
        return await self.finish(info)

    async def _prefetch_cache(self, todo: list[tuple[Case, int]]) -> None:
        if not self.options.use_cache:
            return
        self.keys = {(c.id, r): cache_key(self.session, c, r) for c, r in todo}
        self.cached = await self.store.cache_get_many(self.keys.values())

    async def _one(self, item: tuple[Case, int]) -> None:
        case, repeat = item
        assert self.info is not None and self.writer is not None
        call = CallInfo(self.info.id, case, repeat)
        key = self.keys.get((case.id, repeat))
        hit = self.cached.get(key) if key else None
        sample = Sample(case_id=case.id, repeat=repeat, trace_id=call.trace_id)
        if hit is not None:
            _from_cache(sample, hit)
        else:
            started = time.perf_counter()
            try:
                output = await self.session.run(call)
            except TargetUnavailable:
                raise
            except EvalError as exc:
                sample.error = exc.message
                output = None
            sample.latency_ms = round((time.perf_counter() - started) * 1000, 3)
            if output is not None:
                _from_output(sample, output)
        if sample.output is not None:
            ctx = self._score_context(call)
            sample.verdicts = await score_output(self.suite.scorers, case, sample.output, ctx)
        sample.finished_at = datetime.now(UTC)
        sample.events = sample_events(sample, sample.finished_at)
        self.writer.put(case, sample, key)
        if self.options.on_sample:
            self.options.on_sample(sample)
        # Yield once per case: a target that never suspends (in-process, zero latency)
        # must not starve the writer, or finished cases would sit in memory until the end.
        await asyncio.sleep(0)

    def _score_context(self, call: CallInfo) -> ScoreContext:
        link, writer = self.link, self.writer
        assert writer is not None
        chat = None
        if link is not None:
            headers = call.headers()

            async def chat_fn(
                model: str, messages: list[dict[str, Any]], params: dict[str, Any]
            ) -> Any:
                return await link.chat(model, messages, params, headers)

            chat = chat_fn
        if not self.options.use_cache:
            return ScoreContext(chat=chat)
        return ScoreContext(
            chat=chat,
            cache_get=self.store.cache_get,
            cache_put=writer.cache_put,
            model_fingerprint=link.fingerprint if link is not None else None,
        )

    async def finish(self, info: RunInfo) -> RunOutcome:
        record = await self.store.load_run(info.id)
        spec = self.suite.spec
        summary = summarise(record, self.options.baseline, resamples=spec.bootstrap, seed=spec.seed)
        gates = evaluate_gates(
            list(spec.gates),
            record,
            summary,
            self.options.baseline,
            resamples=spec.bootstrap,
            seed=spec.seed,
        )
        problems = self.problems(record, summary)
        info.status = "completed" if not problems else "incomplete"
        info.finished_at = datetime.now(UTC)
        info.summary = summary_json(summary, gates, problems)
        record.info = info
        code = exit_code(gates, complete=not problems)
        passed = None if code == 2 else code == 0
        await self.store.save_run(info, gates_passed=passed)
        queued = await enqueue_review(self.store, record, self.suite)
        return RunOutcome(record, summary, gates, code, problems, queued)

    def problems(self, record: RunRecord, summary: Summary) -> list[str]:
        out = []
        expected = len(self.cases) * self.suite.spec.repeats
        if summary.totals.samples < expected:
            out.append(f"only {summary.totals.samples} of {expected} samples were run")
        rate = summary.totals.error_rate
        if rate > self.suite.spec.max_error_rate:
            first = next((s for s in record.samples if s.error), None)
            out.append(
                f"{summary.totals.errors} of {summary.totals.samples} samples failed "
                f"(error rate {rate:.1%} > max_error_rate {self.suite.spec.max_error_rate:.1%})"
                + (f"; first: {first.case_id}: {first.error}" if first else "")
                + f"; retry them with --resume {record.info.id}"
            )
        return out


def _from_cache(sample: Sample, hit: dict[str, Any]) -> None:
    sample.cached = True
    sample.output = str(hit.get("text") or "")
    sample.request_ids = [str(r) for r in hit.get("request_ids") or []]
    sample.trace_id = hit.get("trace_id") or sample.trace_id
    sample.input_tokens = int(hit.get("input_tokens") or 0)
    sample.output_tokens = int(hit.get("output_tokens") or 0)
    cost = hit.get("cost_pico")
    sample.cost_pico = int(cost) if cost is not None else None
    sample.latency_ms = float(hit.get("latency_ms") or 0.0)


def _from_output(sample: Sample, output: TargetOutput) -> None:
    sample.output = output.text
    sample.request_ids = output.request_ids
    sample.input_tokens = output.input_tokens
    sample.output_tokens = output.output_tokens
    sample.cost_pico = output.cost_pico


async def run_suite(
    suite: Suite, store: EvalStore, link: GatewayLink | None, options: RunOptions | None = None
) -> RunOutcome:
    """Run (or resume) ``suite`` and return the stored record, statistics and gate results."""
    return await SuiteRun(suite, store, link, options or RunOptions()).execute()
