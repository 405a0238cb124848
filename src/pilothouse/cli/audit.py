"""``pilothouse audit verify|head|export``: check and read the hash-chained audit log."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import typer

from pilothouse.audit import log
from pilothouse.cli.common import ConfigOption, run, with_engine
from pilothouse.costs.usage_query import parse_time

app = typer.Typer(help="Verify and export the tamper-evident audit log.", no_args_is_help=True)


@app.command()
def verify(
    expect_head: str | None = typer.Option(
        None, "--expect-head", help="A head hash recorded earlier: also detects a cut tail."
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Exit 0 with the row count and head hash when the chain holds; exit 1 naming the bad seq."""
    verdict = run(lambda: with_engine(config, lambda e: log.verify(e, expect_head)))
    if not verdict.ok:
        print(f"FAIL {verdict.message()}", file=sys.stderr)
        raise typer.Exit(1)
    print(f"ok: {verdict.count} rows, head {verdict.head}")


@app.command()
def head(config: Path | None = ConfigOption) -> None:
    """Print the head hash (record it elsewhere; pass it to `verify --expect-head`)."""
    _seq, digest = run(lambda: with_engine(config, log.head))
    print(digest)


@app.command()
def export(
    since: str | None = typer.Option(None, "--since", help="ISO time or relative (24h, 7d)."),
    config: Path | None = ConfigOption,
) -> None:
    """Write the log as JSONL to stdout, oldest first."""
    rows = run(
        lambda: with_engine(config, lambda e: log.read_rows(e, since=parse_time(since, "since")))
    )
    out = sys.stdout.buffer
    for row in rows:
        out.write(orjson.dumps(log.public(row)) + b"\n")
    out.flush()
