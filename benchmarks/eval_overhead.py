"""Eval harness overhead: cases per second against the chaos provider with zero latency.

Three measurements per round, interleaved so machine drift hits all alike:

- ``direct``: the same chat requests sent straight through the embedded gateway's
  client at the same concurrency (no harness), until their usage rows are written
  — the ceiling;
- ``harness``: ``run_suite`` with the cache off: target call, scoring (exact +
  regex), events, group-committed result rows with exact costs from the ledger;
- ``cached``: the same suite again with the cache on: no gateway calls, so this
  is the harness alone (cache lookup, scoring, writing).

Reported: cases/s for each (median of rounds), the ratio harness/direct, the
harness cost per case in milliseconds (1/harness - 1/direct), and the time to
compute statistics (bootstrap CIs for every metric and slice) for the run.
On a shared machine the ratio says more than the absolute numbers.

    python benchmarks/eval_overhead.py                  # 1000 cases, 3 rounds
    python benchmarks/eval_overhead.py --cases 300 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from pilothouse import __version__
from pilothouse.config.load import parse_settings
from pilothouse.evals.analysis import summarise
from pilothouse.evals.link import open_link
from pilothouse.evals.runner import RunOptions, run_suite
from pilothouse.evals.store import EvalStore
from pilothouse.evals.suite import Suite, load_suite
from pilothouse.store.db import create_engine, migrate


def write_suite(folder: Path, cases: int, concurrency: int) -> Path:
    rows = (
        orjson.dumps(
            {
                "id": f"c{i:05d}",
                "input": f"answer {i}",
                "expected": f"answer {i}" if i % 3 else "something else",  # 2/3 pass
                "metadata": {"topic": f"t{i % 10}", "difficulty": ("easy", "hard")[i % 2]},
            }
        )
        for i in range(cases)
    )
    (folder / "cases.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    path = folder / f"suite-{concurrency}.yaml"
    path.write_text(
        "name: overhead\ntarget: {model: echo}\ndataset: cases.jsonl\n"
        "params: {temperature: 0, max_tokens: 16}\n"
        "scorers: [{type: exact}, {type: regex, pattern: '\\\\d+'}]\n"
        "slices: [metadata.topic, metadata.difficulty]\n"
        f"concurrency: {concurrency}\n"
    )
    return path


def settings_for(folder: Path) -> Any:
    return parse_settings(
        {
            "store": {
                "url": f"sqlite:///{folder / 'bench.db'}",
                "spool_path": str(folder / "spool.jsonl"),
            },
            "providers": {"echo": {"type": "chaos", "reply": "echo"}},
            "models": {"echo": {"targets": [{"provider": "echo", "model": "echo-1"}]}},
            "prices": {"echo-1": {"input": "1", "output": "2"}},
        },
        source="<eval-overhead>",
    )


async def direct(link: Any, suite: Suite) -> float:
    """Cases/s for the same requests without the harness."""
    queue = list(suite.cases)
    params = dict(suite.spec.params)

    async def worker() -> None:
        while queue:
            case = queue.pop()
            messages = [{"role": "user", "content": case.input}]
            await link.chat("echo", messages, params)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(suite.spec.concurrency)))
    # Until the usage rows are written: the harness waits for them (exact costs), so the
    # ceiling must pay for them too.
    assert link.runtime is not None  # embedded gateway
    await link.runtime.ledger.flush()
    return len(suite.cases) / (time.perf_counter() - start)


async def harness(link: Any, store: EvalStore, suite: Suite, *, cache: bool) -> tuple[float, Any]:
    start = time.perf_counter()
    outcome = await run_suite(suite, store, link, RunOptions(use_cache=cache))
    elapsed = time.perf_counter() - start
    return len(suite.cases) / elapsed, outcome


async def one_round(folder: Path, suite: Suite) -> dict[str, float]:
    settings = settings_for(folder)
    engine = create_engine(settings.store.url)
    await migrate(engine)
    store = EvalStore(engine)
    try:
        async with open_link(settings=settings) as link:
            await direct(link, suite)  # warm-up: imports, connection pool, first queries
            d = await direct(link, suite)
            h, outcome = await harness(link, store, suite, cache=False)
            await harness(link, store, suite, cache=True)  # fills the cache
            c, _ = await harness(link, store, suite, cache=True)
        start = time.perf_counter()
        summarise(outcome.record, resamples=suite.spec.bootstrap)
        stats_s = time.perf_counter() - start
    finally:
        await engine.dispose()
    return {"direct": d, "harness": h, "cached": c, "stats_s": stats_s}


def median(rounds: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()
    results = []
    for concurrency in args.concurrency:
        rounds = []
        for r in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                suite = load_suite(write_suite(folder, args.cases, concurrency))
                rounds.append(asyncio.run(one_round(folder, suite)))
            print(f"concurrency {concurrency} round {r + 1}: {rounds[-1]}", file=sys.stderr)
        d, h, c = (median(rounds, k) for k in ("direct", "harness", "cached"))
        results.append(
            {
                "concurrency": concurrency,
                "direct_cases_per_s": round(d, 1),
                "harness_cases_per_s": round(h, 1),
                "cached_cases_per_s": round(c, 1),
                "harness_over_direct": round(h / d, 3),
                "harness_ms_per_case": round((1 / h - 1 / d) * 1000, 3),
                "statistics_s": round(median(rounds, "stats_s"), 3),
                "rounds": rounds,
            }
        )
    report = {
        "benchmark": "eval_overhead",
        "cases": args.cases,
        "scorers": ["exact", "regex"],
        "slices": 12,
        "store": "sqlite (tmp)",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "pilothouse": __version__,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
