"""What the console's full-text index costs the trace writer on SQLite; prints JSON.

With the default SQLite store the index work runs on the store's connection thread,
i.e. on the gateway's own core. This migrates a fresh store with pilothouse's own
migrations, then inserts the same trace rows (batches of 100 per commit, as the
writer does) under three variants, interleaved per round:

* ``queued`` (as shipped, migration 0018): the insert trigger queues the trace id and
  the writer indexes the batch with ``store.search_index.INDEX_PENDING`` before commit;
* ``per_row``: migration 0017's trigger, which indexed each trace as it was inserted;
* ``none``: no index at all (what a trace insert costs without search).

Run: PYTHONPATH=src python benchmarks/trace_insert.py [--traces 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import platform
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from pilothouse.store.db import create_engine, migrate
from pilothouse.store.search_index import INDEX_PENDING

PER_ROW = importlib.import_module("pilothouse.store.migrations.versions.0017_console_search")

CONTENT = json.dumps(
    {
        "request": {"messages": [{"role": "user", "content": "Say hello to the benchmark in one "
                                  "short sentence please"}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": "Hello from the "
                                  "mock upstream, this is a reply."}}]},
    }
)  # fmt: skip
INSERT = (
    "INSERT INTO traces (trace_id, request_id, created_at, status, attempts, input_tokens, "
    "output_tokens, cost_pico, cache_hit, content) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
BATCH = 100
VARIANTS = ("queued", "per_row", "none")


async def _migrated(path: Path) -> None:
    engine = create_engine(f"sqlite:///{path}")
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def _prepare(template: Path, target: Path, variant: str) -> sqlite3.Connection:
    shutil.copy(template, target)
    conn = sqlite3.connect(target)
    if variant != "queued":
        conn.execute("DROP TRIGGER trace_search_insert")
    if variant == "per_row":
        conn.execute(next(s for s in PER_ROW.SQLITE if "TRIGGER trace_search_insert" in s))
    conn.commit()
    return conn


def _time_inserts(conn: sqlite3.Connection, traces: int, variant: str) -> float:
    """Microseconds per trace row, commits included."""
    start = time.perf_counter()
    for batch in range(traces // BATCH):
        rows = [
            (uuid.uuid4().hex, f"req-{batch}-{i}", "2026-12-03 07:00:00.000000",
             200, 1, 10, 10, 1000, 0, CONTENT)
            for i in range(BATCH)
        ]  # fmt: skip
        conn.executemany(INSERT, rows)
        if variant == "queued":
            for statement in INDEX_PENDING:
                conn.execute(statement)
        conn.commit()
    return (time.perf_counter() - start) / traces * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        template = work / "template.db"
        asyncio.run(_migrated(template))
        per_round: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(args.rounds):
            for variant in VARIANTS:
                conn = _prepare(template, work / f"{variant}.db", variant)
                try:
                    per_round[variant].append(round(_time_inserts(conn, args.traces, variant), 1))
                finally:
                    conn.close()
    median = {v: statistics.median(xs) for v, xs in per_round.items()}
    print(
        json.dumps(
            {
                "us_per_trace_median": median,
                "us_per_trace_rounds": per_round,
                "search_index_us_per_trace": {
                    v: round(median[v] - median["none"], 1) for v in ("queued", "per_row")
                },
                "traces": args.traces,
                "batch": BATCH,
                "sqlite": sqlite3.sqlite_version,
                "python": platform.python_version(),
                "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
