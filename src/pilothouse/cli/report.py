"""``pilothouse report costs|anomalies``: where the money goes, and whether it looks normal."""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import orjson
import typer
from rich.table import Table

from pilothouse.cli.common import ConfigOption, console, fail, run, settings_from
from pilothouse.costs.anomaly import SpendAnomalyDetector, describe
from pilothouse.costs.report import GROUPS, cost_report, parse_groups
from pilothouse.costs.usage_query import parse_time
from pilothouse.errors import PilothouseError
from pilothouse.store.db import create_engine
from pilothouse.telemetry.alerts import AlertManager

app = typer.Typer(help="Cost attribution and spend anomaly reports.", no_args_is_help=True)

METRICS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "tasks",
    "successful_tasks",
    "cost_per_successful_task_usd",
)
# Short headers for the terminal table; CSV and JSON keep the full field names.
HEADERS = {
    "key_name": "name",
    "upstream_model": "upstream",
    "input_tokens": "in tokens",
    "output_tokens": "out tokens",
    "cost_usd": "cost USD",
    "successful_tasks": "succeeded",
    "cost_per_successful_task_usd": "USD per success",
}


def _columns(report: dict[str, Any]) -> list[str]:
    groups: list[str] = []
    for group in report["by"]:
        named = {"key": "key_name", "team": "team_name", "user": "user_name"}.get(group)
        # Names of team/user entities only when some row has one (metadata teams have none).
        shown = named == "key_name" or any(row.get(named) for row in report["data"])
        groups += [group, named] if named and shown else [group]
    return groups


def _cell(value: Any, empty: str) -> str:
    return empty if value is None else str(value)


def _table(*headers: str) -> Table:
    """A Rich table that folds long cells instead of eliding them: money is never cut."""
    table = Table()
    for header in headers:
        table.add_column(HEADERS.get(header, header), overflow="fold")
    return table


def print_table(report: dict[str, Any]) -> None:
    groups = _columns(report)
    table = _table(*groups, *METRICS)
    for row in report["data"]:
        table.add_row(*(_cell(row[c], "-") for c in (*groups, *METRICS)))
    total = report["total"]
    lead = ["[bold]total[/]"] + [""] * (len(groups) - 1) if groups else []
    table.add_row(*lead, *(_cell(total[c], "-") for c in METRICS), end_section=True)
    console.print(table)


def write_csv(report: dict[str, Any]) -> None:
    """Every row and column, plus a final ``total`` row; money as exact decimal strings."""
    groups = _columns(report)
    metrics = list(report["total"])
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([*groups, *metrics])
    for row in report["data"]:
        writer.writerow([_cell(row[c], "") for c in (*groups, *metrics)])
    if groups:
        lead = ["total"] + [""] * (len(groups) - 1)
        writer.writerow([*lead, *(_cell(report["total"][c], "") for c in metrics)])


@app.command("costs")
def costs(
    by: str = typer.Option("", "--by", help=f"Comma-separated groups: {', '.join(GROUPS)}."),
    since: str | None = typer.Option(None, help="ISO time or span like 7d, 12h."),
    until: str | None = typer.Option(None, help="ISO time or span (exclusive)."),
    output: str = typer.Option("table", "--format", help="table, csv or json."),
    config: Path | None = ConfigOption,
) -> None:
    """Spend, tokens, errors and cost per successful task, grouped."""
    if output not in ("table", "csv", "json"):
        fail(f"--format must be table, csv or json, got {output!r}")
    try:
        groups = parse_groups(by)
    except PilothouseError as exc:
        fail(exc.message.replace("`by`", "--by"))
    settings = settings_from(config)

    async def query() -> dict[str, Any]:
        engine = create_engine(settings.store.url)
        try:
            return await cost_report(
                engine,
                by=groups,
                since=parse_time(since, "since"),
                until=parse_time(until, "until"),
            )
        finally:
            await engine.dispose()

    report = run(query)
    if output == "json":
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    elif output == "csv":
        write_csv(report)
    else:
        print_table(report)


@app.command("anomalies")
def anomalies(
    at: str | None = typer.Option(None, help="Evaluate at this ISO time (default: now)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    config: Path | None = ConfigOption,
) -> None:
    """Show each key's and team's last-hour spend against its baseline (sends no alerts)."""
    settings = settings_from(config)
    cfg = msgspec.structs.replace(settings.costs.anomaly, enabled=True)

    async def evaluate() -> list[dict[str, Any]]:
        now = parse_time(at, "at") or datetime.now(UTC)
        engine = create_engine(settings.store.url)
        try:
            detector = SpendAnomalyDetector(engine, cfg, AlertManager())
            return [describe(a) for a in await detector.evaluate(now)]
        finally:
            await engine.dispose()

    rows = run(evaluate)
    if as_json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        console.print(
            f"no key or team has spent in this hour on {cfg.min_baseline_days} or more of the "
            f"last {cfg.lookback_days} days; nothing to judge yet",
            highlight=False,
        )
        return
    columns = ["scope", "subject", "observed_usd", "baseline_median_usd", "baseline_mad_usd"]
    table = _table(*columns, "robust_z", "days", "anomalous")
    for row in rows:
        flag = "[bold red]yes[/]" if row["anomalous"] else "no"
        z = f"{row['robust_z']:.2f}"
        table.add_row(*(str(row[c]) for c in columns), z, str(row["baseline_days"]), flag)
    console.print(table)
    console.print(
        f"threshold z >= {cfg.threshold:g} and spend >= {cfg.min_spend_usd} USD; "
        f"{cfg.lookback_days} days lookback, at least {cfg.min_baseline_days} days of history",
        highlight=False,
    )
