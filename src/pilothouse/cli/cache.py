"""``pilothouse cache eval PAIRS.jsonl``: how safe and how useful a semantic cache setting is."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import typer
from rich.table import Table

from pilothouse.cli.common import console, fail
from pilothouse.errors import PilothouseError

app = typer.Typer(help="Semantic cache: measure a configuration on labelled pairs.")


def _fmt(r: dict[str, object]) -> str:
    value, ci = r["value"], r["ci"]
    if value is None:
        return "n/a"
    return f"{value:.1%} [{ci[0]:.1%}, {ci[1]:.1%}] ({r['k']}/{r['n']})"  # type: ignore[index]


@app.command("eval")
def eval_pairs(
    pairs_file: Path = typer.Argument(..., help="JSONL: cached, query, should_hit, kind."),
    threshold: float = typer.Option(0.92, help="Cosine similarity a neighbour must reach."),
    gate: bool = typer.Option(True, "--gate/--no-gate", help="Apply the content gate."),
    verifier: str | None = typer.Option(None, help="A registered verifier plugin."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Precision on hits and hit rate on paraphrases (Wilson 95% intervals), per kind."""
    from pilothouse.cache import gate as gates
    from pilothouse.cache.evaluation import encode_all, evaluate, load_pairs

    if not 0 < threshold <= 1:
        fail("--threshold must be in (0, 1]")
    try:
        raw = pairs_file.read_bytes()
    except OSError as exc:
        fail(f"{pairs_file}: cannot read: {exc.strerror or exc}")
    try:
        pairs = load_pairs(raw, str(pairs_file))
        check = gates.verifier(verifier) if verifier else None
    except PilothouseError as exc:
        fail(exc.message)
    vectors = encode_all(pairs)
    report = asyncio.run(
        evaluate(pairs, vectors, threshold=threshold, use_gate=gate, verifier=check)
    )
    if as_json:
        typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"{pairs_file} · threshold {threshold} · gate {'on' if gate else 'off'}")
    table.add_column("measure")
    table.add_column("value [95% CI]")
    table.add_row("precision on hits", _fmt(report["precision"]))
    table.add_row("hit rate on paraphrases", _fmt(report["hit_rate"]))
    for kind, r in report["false_hits_by_kind"].items():
        table.add_row(f"false hits: {kind}", _fmt(r))
    console.print(table)
