"""``pilothouse traces list|show|prune``: read request reconstructions from the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.panel import Panel
from rich.table import Table
from rich.tree import Tree

from pilothouse.cli.common import ConfigOption, console, run, settings_from, with_engine
from pilothouse.costs.usage_query import parse_time
from pilothouse.telemetry.trace_query import get_trace, list_traces, prune

app = typer.Typer(help="Inspect and prune request traces.", no_args_is_help=True)


@app.command("list")
def list_cmd(
    model: str | None = typer.Option(None, help="Model alias."),
    key_id: str | None = typer.Option(None, "--key-id"),
    status: str | None = typer.Option(None, help="ok, error or an HTTP status."),
    user: str | None = typer.Option(None),
    feature: str | None = typer.Option(None),
    since: str | None = typer.Option(None, help="ISO time or span like 1h, 7d."),
    limit: int = typer.Option(20, min=1, max=200),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Most recent traces first."""
    filters = {"model": model, "key_id": key_id, "user": user, "feature": feature}
    result = run(
        lambda: with_engine(
            config,
            lambda e: list_traces(
                e, filters=filters, status=status, since=parse_time(since, "since"), limit=limit
            ),
        )
    )
    if as_json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(
        "time (UTC)", "request id", "model", "target", "status", "tries", "tokens", "cost USD", "ms"
    )
    for t in result["data"]:
        table.add_row(
            (t["created_at"] or "")[:19].replace("T", " "),
            t["request_id"] or "-",
            t["model"] or "-",
            f"{t['provider'] or '-'}/{t['upstream_model'] or '-'}",
            str(t["status"]),
            str(t["attempts"]),
            f"{t['input_tokens']}/{t['output_tokens']}",
            t["cost_usd"],
            f"{t['duration_ms']:.1f}" if t["duration_ms"] is not None else "-",
        )
    console.print(table)


def _messages(request: dict[str, Any] | None) -> list[str]:
    lines = []
    for msg in (request or {}).get("messages") or []:
        content = msg.get("content")
        text = content if isinstance(content, str) else orjson.dumps(content).decode()
        lines.append(f"[bold]{msg.get('role')}[/]: {text}")
    return lines


def _span_tree(spans: list[dict[str, Any]]) -> Tree:
    start = min((s["start_ns"] for s in spans), default=0)
    nodes: dict[str | None, Tree] = {}
    root = Tree("spans")
    for span in spans:
        offset = (span["start_ns"] - start) / 1e6
        label = (
            f"{span['name']} [dim]+{offset:.1f} ms, {span['duration_ms']:.1f} ms, "
            f"{span['status']}, {span['source']}[/]"
        )
        if span["status_message"]:
            label += f" [red]{span['status_message']}[/]"
        parent = nodes.get(span["parent_span_id"], root)
        nodes[span["span_id"]] = parent.add(label)
    return root


@app.command()
def show(
    ident: str = typer.Argument(..., help="Request id or trace id."),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """The full reconstruction of one request."""
    trace = run(lambda: with_engine(config, lambda e: get_trace(e, ident)))
    if as_json:
        print(orjson.dumps(trace, option=orjson.OPT_INDENT_2).decode())
        return
    head = Table.grid(padding=(0, 2))
    for label, key in (
        ("request", "request_id"),
        ("trace", "trace_id"),
        ("model", "model"),
        ("target", "upstream_model"),
        ("status", "status"),
        ("attempts", "attempts"),
        ("tokens in/out", "input_tokens"),
        ("cost USD", "cost_usd"),
        ("latency ms", "duration_ms"),
        ("TTFT ms", "ttft_ms"),
        ("user", "user"),
        ("feature", "feature"),
        ("prompt", "prompt_name"),
    ):
        value = trace.get(key)
        if key == "input_tokens":
            value = f"{trace.get('input_tokens')}/{trace.get('output_tokens')}"
        if key == "prompt_name" and value:
            value = f"{value}@{trace.get('prompt_version')}"
        head.add_row(label, str(value if value is not None else "-"))
    console.print(Panel(head, title="trace"))
    for n, attempt in enumerate(trace.get("attempts") or [], start=1):
        console.print(
            f"attempt {n}: {attempt['provider']}/{attempt['model']} "
            f"{attempt['outcome']} in {attempt['duration_ms']} ms"
            + (f" — {attempt['error']}" if attempt.get("error") else "")
        )
    if trace.get("request"):
        console.print(Panel("\n".join(_messages(trace["request"])) or "-", title="messages"))
    response = trace.get("response") or {}
    choices = response.get("choices") or []
    if choices:
        message = choices[0].get("message") or {}
        console.print(
            Panel(str(message.get("content") or message.get("tool_calls") or ""), title="response")
        )
    console.print(_span_tree(trace.get("spans") or []))


@app.command("prune")
def prune_cmd(
    older_than_days: int | None = typer.Option(
        None, "--older-than-days", help="Default: telemetry.retention_days from the config."
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Delete traces older than the retention period."""
    days = older_than_days or settings_from(config).telemetry.retention_days
    cutoff = datetime.now(UTC) - timedelta(days=days)
    removed = run(lambda: with_engine(config, lambda e: prune(e, cutoff)))
    console.print(f"pruned {removed} trace(s) older than {days} day(s)")
