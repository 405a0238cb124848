"""``pilothouse traces list|show|prune``: read request reconstructions from the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.cli.common import ConfigOption, console, run, settings_from, with_engine
from pilothouse.costs.usage_query import parse_time
from pilothouse.telemetry.metadata_privacy import MetadataPrivacy
from pilothouse.telemetry.trace_query import get_trace, list_traces, prune

app = typer.Typer(help="Inspect and prune request traces.", no_args_is_help=True)


@app.command("list")
def list_cmd(
    model: str | None = typer.Option(None, help="Model alias."),
    key_id: str | None = typer.Option(None, "--key-id", help="Only this key id."),
    status: str | None = typer.Option(None, help="ok, error or an HTTP status."),
    user: str | None = typer.Option(None, help="Only this end user."),
    feature: str | None = typer.Option(None, help="Only this feature tag."),
    team: str | None = typer.Option(None, help="Only this team."),
    since: str | None = typer.Option(None, help="ISO time or span like 1h, 7d."),
    until: str | None = typer.Option(None, help="ISO time or span like 1h (exclusive end)."),
    limit: int = typer.Option(20, min=1, max=200, help="Most traces to show."),
    wide: bool = typer.Option(False, "--wide", help="Also show target, tries and tokens."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    config: Path | None = ConfigOption,
) -> None:
    """Most recent traces first. Request ids are never shortened, whatever the width."""
    filters = {"model": model, "key_id": key_id, "user": user, "feature": feature, "team": team}
    settings = settings_from(config)

    async def query(engine: AsyncEngine) -> dict[str, Any]:
        if user:  # stored as its pseudonym when it holds personal data
            privacy = await MetadataPrivacy.for_store(settings, engine)
            filters["user"] = privacy.stored_value("user", user)
        return await list_traces(
            engine,
            filters=filters,
            status=status,
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
            limit=limit,
        )

    result = run(lambda: with_engine(config, query))
    if as_json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    # A request id is pasted into `traces show`: its column never shrinks below the longest id.
    id_width = max((len(t["request_id"] or "-") for t in result["data"]), default=1)
    table = Table("time (UTC)")
    table.add_column("request id", no_wrap=True, min_width=id_width)
    for name in ("model", "status", "cost USD", "ms"):
        table.add_column(name)
    if wide:
        for name in ("target", "tries", "tokens"):
            table.add_column(name)
    for t in result["data"]:
        row = [
            (t["created_at"] or "")[:19].replace("T", " "),
            t["request_id"] or "-",
            t["model"] or "-",
            str(t["status"]),
            t["cost_usd"],
            f"{t['duration_ms']:.1f}" if t["duration_ms"] is not None else "-",
        ]
        if wide:
            row += [
                f"{t['provider'] or '-'}/{t['upstream_model'] or '-'}",
                str(t["attempts"]),
                f"{t['input_tokens']}/{t['output_tokens']}",
            ]
        table.add_row(*row)
    # --wide is for scrolling or piping: lines as long as the content, never squeezed.
    (Console(width=max(console.width, 250)) if wide else console).print(table)


def _messages(request: dict[str, Any] | None) -> list[str]:
    lines = []
    for msg in (request or {}).get("messages") or []:
        content = msg.get("content")
        text = content if isinstance(content, str) else orjson.dumps(content).decode()
        lines.append(f"[bold]{msg.get('role')}[/]: {text}")
    return lines


def _span_label(span: dict[str, Any], start: int) -> Text:
    offset = (span["start_ns"] - start) / 1e6
    label = Text(span["name"])
    label.append(
        f" +{offset:.1f} ms, {span['duration_ms']:.1f} ms, {span['status']}, {span['source']}",
        style="dim",
    )
    if span["status_message"]:
        label.append(f" {span['status_message']}", style="red")
    return label


def _span_tree(spans: list[dict[str, Any]]) -> Tree:
    """Spans under their parents, whatever order they were stored in.

    An application's span (sent with the request's ``traceparent``) may be stored after
    the gateway spans it parents; a span whose parent is not in the trace is a root.
    """
    start = min((s["start_ns"] for s in spans), default=0)
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in sorted(spans, key=lambda s: s["start_ns"]):
        parent = span["parent_span_id"]
        key = parent if parent in ids and parent != span["span_id"] else None
        children.setdefault(key, []).append(span)
    root = Tree("spans")
    seen: set[str] = set()

    def attach(node: Tree, parent_id: str | None) -> None:
        for span in children.get(parent_id, []):
            if span["span_id"] not in seen:  # a parent cycle must not loop forever
                seen.add(span["span_id"])
                attach(node.add(_span_label(span, start)), span["span_id"])

    attach(root, None)
    return root


@app.command()
def show(
    ident: str = typer.Argument(..., help="Request id or trace id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
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
        ("target", "provider"),
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
        if key == "provider":
            value = f"{value or '-'}/{trace.get('upstream_model') or '-'}"
        if key == "attempts" and isinstance(value, list):
            value = str(len(value))
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
