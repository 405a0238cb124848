"""What the console's full-text index costs the trace writer on SQLite; prints JSON.

Every stored trace fires the ``trace_search_insert`` trigger of migration 0017: a row
in ``trace_search_rows`` (two indexes) and the content's string values into the FTS5
table ``trace_search``. That work runs on the store's connection thread, i.e. on the
gateway's own core with the default SQLite store. This migrates a fresh store with
pilothouse's own migrations, then inserts the same trace rows (batches of 100 per
commit, as the writer does) under three trigger variants, interleaved per round:

* ``shipped``: the migration's trigger;
* ``rows_only``: only the ``trace_search_rows`` half (no FTS5 insert);
* ``none``: no trigger (what a trace insert costs without search).

Run: PYTHONPATH=src python benchmarks/trace_insert.py [--traces 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
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
VARIANTS = ("shipped", "rows_only", "none")


async def _migrated(path: Path) -> None:
    engine = create_engine(f"sqlite:///{path}")
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def _prepare(template: Path, target: Path, variant: str) -> sqlite3.Connection:
    shutil.copy(template, target)
    conn = sqlite3.connect(target)
    trigger = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'trace_search_insert'"
    ).fetchone()[0]
    if variant != "shipped":
        conn.execute("DROP TRIGGER trace_search_insert")
    if variant == "rows_only":
        rows_half, sep, _fts_half = trigger.partition("; INSERT INTO trace_search ")
        assert sep, "the trigger no longer has the shape this benchmark expects"
        conn.execute(rows_half + "; END")
    conn.commit()
    return conn


def _time_inserts(conn: sqlite3.Connection, traces: int) -> float:
    """Microseconds per trace row, commits included."""
    start = time.perf_counter()
    for batch in range(traces // BATCH):
        rows = [
            (uuid.uuid4().hex, f"req-{batch}-{i}", "2026-12-03 07:00:00.000000",
             200, 1, 10, 10, 1000, 0, CONTENT)
            for i in range(BATCH)
        ]  # fmt: skip
        conn.executemany(INSERT, rows)
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
                    per_round[variant].append(round(_time_inserts(conn, args.traces), 1))
                finally:
                    conn.close()
    median = {v: statistics.median(xs) for v, xs in per_round.items()}
    print(
        json.dumps(
            {
                "us_per_trace_median": median,
                "us_per_trace_rounds": per_round,
                "search_index_us_per_trace": round(median["shipped"] - median["none"], 1),
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
