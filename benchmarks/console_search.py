"""Console request log and dashboards: query time on a store with N requests; prints JSON.

Fills a fresh store (SQLite file, or a PostgreSQL database you name) with ``--n`` usage
rows and traces over 24 hours, each trace holding a prompt and an answer, then times
(median of ``--rounds``) what the pages run: a full-text search for a rare word and for a
common one, the tag and team filters, sorting by latency, and the dashboards' queries.

Run: PYTHONPATH=src python benchmarks/console_search.py [--n 50000] [--rounds 5]
     [--url postgresql://postgres@127.0.0.1:5432/bench_console]   (an empty database)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from pilothouse.console import queries
from pilothouse.console.dashboard_queries import dashboard
from pilothouse.console.queries import LogFilters
from pilothouse.store.db import create_engine, migrate
from pilothouse.store.tables import traces, usage_records

WORDS = ["refund", "parcel", "weather", "invoice", "delivery", "account", "password", "reset",
         "order", "status"]  # fmt: skip


def _rows(n: int, now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    usage, trace = [], []
    for i in range(n):
        at = now - timedelta(seconds=86_400 * i / n)
        words = f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7) % len(WORDS)]} case{i}"
        usage.append({
            "id": f"u{i:08d}", "request_id": f"req_{i}", "created_at": at, "endpoint": "chat",
            "alias": f"alias{i % 5}", "status": 500 if i % 50 == 0 else 200,
            "latency_ms": float(i % 997), "ttft_ms": float(i % 311), "cost_pico": i * 1000,
            "cache_hit": i % 10 == 0, "metadata": {"tags": [f"t{i % 20}"], "team": f"team{i % 8}"},
        })  # fmt: skip
        trace.append({
            "trace_id": f"{i:032x}", "request_id": f"req_{i}", "created_at": at, "attempts": 1,
            "input_tokens": 10, "output_tokens": 10, "cost_pico": 0, "cache_hit": False,
            "content": {"request": {"messages": [{"role": "user", "content": f"about {words}"}]},
                        "response": {"choices": [{"message": {"content": f"answer {words}"}}]}},
        })  # fmt: skip
    return usage, trace


async def _time(rounds: int, run: Any) -> dict[str, float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - start) * 1000)
    return {"median_ms": round(statistics.median(samples), 2), "max_ms": round(max(samples), 2)}


async def main(url: str, n: int, rounds: int) -> dict[str, Any]:
    engine = create_engine(url)
    now = datetime.now(UTC)
    try:
        await migrate(engine)
        usage, trace = _rows(n, now)
        start = time.perf_counter()
        async with engine.begin() as conn:
            for i in range(0, n, 5000):
                await conn.execute(insert(traces), trace[i : i + 5000])
                await conn.execute(insert(usage_records), usage[i : i + 5000])
        load_s = time.perf_counter() - start

        def log(**f: Any) -> Any:
            return lambda: queries.request_log(engine, LogFilters(**f), limit=50)

        cases = {
            "search rare word (1 match)": log(q=f"case{n // 2}"),
            "search common word (10% match)": log(q="refund"),
            "search two words": log(q="refund parcel"),
            "filter tag": log(tag="t3"),
            "filter team (metadata)": log(team="team2"),
            "sort by latency, all rows": log(sort="latency"),
            "sort by cost, last hour": log(sort="cost", since=now - timedelta(hours=1)),
            "dashboards, 24 h hourly": lambda: dashboard(engine, now - timedelta(hours=24), now),
        }
        results = {name: await _time(rounds, run) for name, run in cases.items()}
        return {"store": engine.dialect.name, "rows": n, "load_s": round(load_s, 1),
                "results": results}  # fmt: skip
    finally:
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--url", default=None, help="an empty PostgreSQL database (else SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{tmp}/bench.db"
        out = asyncio.run(main(url, args.n, args.rounds))
    out["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    out["python"] = platform.python_version()
    out["cpus"] = os.cpu_count()
    out["load_average"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))
