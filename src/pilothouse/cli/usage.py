"""``pilothouse usage``: exact spend and tokens from the usage ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer
from rich.table import Table

from pilothouse.cli.common import ConfigOption, check_choice, console, run, with_engine
from pilothouse.costs.usage_query import GROUPS, parse_time, usage_summary


def usage(
    key_id: str | None = typer.Option(None, "--key-id", help="Only this key id."),
    team_id: str | None = typer.Option(
        None,
        "--team-id",
        help="Only this team's usage (team entity id, else the team in request or key metadata).",
    ),
    user_id: str | None = typer.Option(None, "--user-id", help="Only this user's usage."),
    model: str | None = typer.Option(None, "--model", help="Model alias."),
    since: str | None = typer.Option(None, help="ISO time or span like 7d, 12h."),
    until: str | None = typer.Option(None, help="ISO time or span like 1d (end)."),
    group_by: str | None = typer.Option(None, help=f"One of {', '.join(GROUPS)}."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    config: Path | None = ConfigOption,
) -> None:
    """Show usage totals, optionally grouped."""
    if group_by is not None:
        check_choice(group_by, GROUPS, "--group-by")

    async def query() -> dict[str, Any]:
        return await with_engine(
            config,
            lambda engine: usage_summary(
                engine,
                key_id=key_id,
                team_id=team_id,
                user_id=user_id,
                model=model,
                since=parse_time(since, "since"),
                until=parse_time(until, "until"),
                group_by=group_by,
            ),
        )

    summary = run(query)
    if as_json:
        print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
        return
    columns = ["requests", "errors", "input_tokens", "output_tokens", "cost_usd"]
    table = Table(*([group_by] if group_by else []), *columns)
    for row in summary["data"]:
        group = row[group_by]
        table.add_row("-" if group is None else str(group), *(str(row[c]) for c in columns))
    total = summary["total"]
    table.add_row(*(["[bold]total[/]"] if group_by else []), *(str(total[c]) for c in columns))
    console.print(table)
