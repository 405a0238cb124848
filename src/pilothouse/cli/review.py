"""``pilothouse review next | label | export``: the human review queue for judge verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer
from rich.text import Text

from pilothouse.cli.common import console, err_console
from pilothouse.cli.evals import ConfigOpt, StoreOpt, open_store, run_async, where

app = typer.Typer(help="Review judge verdicts; labels feed `eval calibrate`.", no_args_is_help=True)


def _show(item: Any, pending: int) -> None:
    payload = item.payload
    case = payload.get("case", {})
    verdict = payload.get("verdict", {})
    console.print(
        f"[bold]{item.id}[/] · run {item.run_id} · case [bold]{item.case_id}[/]"
        f"{'#' + str(item.repeat) if item.repeat else ''} · scorer {item.scorer} · "
        f"reason [yellow]{item.reason}[/] · {pending} pending",
        highlight=False,
    )
    for title, value in (
        ("input", case.get("input")),
        ("expected", case.get("expected")),
        ("context", case.get("context")),
        ("output", payload.get("output")),
    ):
        if value not in (None, ""):
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            # The title is styled; the case text is printed verbatim (it may hold brackets).
            console.print(Text.assemble((f"{title}:", "dim"), "\n", text), highlight=False)
    judged = verdict.get("error") or verdict.get("explanation") or verdict.get("label")
    console.print(Text.assemble(("judge:", "dim"), " ", str(judged)), highlight=False)
    console.print(f"label it: pilothouse review label {item.id} pass|fail|SCORE [--note TEXT]")


@app.command("next")
def next_cmd(
    run: str | None = typer.Option(None, "--run", help="Only items from this run."),
    config: Path | None = ConfigOpt,
    store: str | None = StoreOpt,
) -> None:
    """Show the oldest pending review item."""
    from pilothouse.evals.review import next_item, pending_count

    place = where(config, None, None, store)

    async def go() -> Any:
        async with open_store(place) as eval_store:
            run_id = await eval_store.resolve_run_id(run) if run else None
            return await next_item(eval_store, run_id), await pending_count(eval_store, run_id)

    item, pending = run_async(go)
    if item is None:
        console.print("the review queue is empty")
        return
    _show(item, pending)


@app.command("label")
def label_cmd(
    item_id: str = typer.Argument(..., metavar="ITEM"),
    label: str = typer.Argument(..., metavar="LABEL", help="pass, fail, or a score on the scale."),
    note: str | None = typer.Option(None, "--note", help="Free-text note kept with the label."),
    config: Path | None = ConfigOpt,
    store: str | None = StoreOpt,
) -> None:
    """Record a human label for a review item."""
    from pilothouse.evals.review import label_item

    place = where(config, None, None, store)

    async def go() -> Any:
        async with open_store(place) as eval_store:
            return await label_item(eval_store, item_id, label, note)

    item = run_async(go)
    console.print(f"labelled {item.id} ({item.case_id}, {item.scorer}) as {item.label}")


@app.command("export")
def export_cmd(
    out: Path | None = typer.Option(None, "--out", "-o", help="JSONL file (default: stdout)."),
    run: str | None = typer.Option(None, "--run", help="Only labels from this run."),
    config: Path | None = ConfigOpt,
    store: str | None = StoreOpt,
) -> None:
    """Export labels as JSONL for `pilothouse eval calibrate --labels`."""
    from pilothouse.evals.review import export_labels

    place = where(config, None, None, store)

    async def go() -> Any:
        async with open_store(place) as eval_store:
            run_id = await eval_store.resolve_run_id(run) if run else None
            return await export_labels(eval_store, run_id)

    rows = run_async(go)
    text = "".join(orjson.dumps(r).decode() + "\n" for r in rows)
    if out is None:
        print(text, end="")
    else:
        out.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {len(rows)} label(s) to {out}", highlight=False)
