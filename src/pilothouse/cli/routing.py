"""``pilothouse routing simulate|train``: replay traffic through a policy; train routers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer
import yaml
from rich.table import Table
from sqlalchemy import select

from pilothouse.cli.common import ConfigOption, console, fail, run, with_engine
from pilothouse.config.load import DEFAULT_CONFIG, parse_settings
from pilothouse.config.schema import Settings
from pilothouse.costs.usage_query import parse_time
from pilothouse.errors import PilothouseError
from pilothouse.limits.keys import KeyStore
from pilothouse.store.tables import usage_records

app = typer.Typer(help="Routing policies: simulate a candidate on recorded traffic, train routers.")
MERGED = ("models", "prices", "providers")


def _yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        fail(f"{path}: cannot read: {exc.strerror or exc}")
    except yaml.YAMLError as exc:
        fail(f"{path}: invalid YAML: {exc}")
    if not isinstance(raw, dict):
        fail(f"{path}: expected a mapping")
    return raw


def store_config(policy: Path, config: Path | None) -> Path | None:
    """Where the recorded traffic is: ``--config``, else a policy file that is a whole config."""
    if config is not None:
        return config
    return policy if "store" in _yaml(policy) else None


def candidate_settings(policy: Path, config: Path | None) -> Settings:
    """The current config with the policy file's aliases, prices and providers laid over it.

    A policy file may also be a whole config; its other sections are then the base.
    """
    overlay = _yaml(policy)
    if config is not None:
        base = _yaml(config)
    elif "store" in overlay:
        base = overlay
    else:
        base = dict(DEFAULT_CONFIG)
    merged = dict(base)
    for section in MERGED:
        if section in overlay:
            merged[section] = {**(base.get(section) or {}), **(overlay[section] or {})}
    try:
        return parse_settings(merged, source=str(policy))
    except PilothouseError as exc:
        fail(exc.message)


@app.command()
def simulate(
    policy: Path = typer.Argument(..., help="YAML with the candidate `models:` (and `prices:`)."),
    since: str = typer.Option("7d", help="ISO time or span like 7d, 12h."),
    until: str | None = typer.Option(None, help="ISO time or span like 1d (end)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    config: Path | None = ConfigOption,
) -> None:
    """Replay recorded usage through POLICY and compare cost and alias mix with what happened."""
    from pilothouse.routing.simulate import Simulator

    candidate = candidate_settings(policy, config)
    start, end = parse_time(since, "since"), parse_time(until, "until")

    async def replay(engine: Any) -> dict[str, Any]:
        query = select(usage_records).order_by(usage_records.c.created_at)
        if start is not None:
            query = query.where(usage_records.c.created_at >= start)
        if end is not None:
            query = query.where(usage_records.c.created_at < end)
        async with engine.connect() as conn:
            rows = [dict(r._mapping) for r in await conn.execute(query)]
        keys = {k.id: k for k in await KeyStore(engine).list_all(include_revoked=True)}
        report = await Simulator(candidate).replay(rows, keys)
        return report.public()

    out = run(lambda: with_engine(store_config(policy, config), replay))
    if as_json:
        print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(
        "alias", "requests (actual)", "requests (policy)", "cost USD (actual)", "cost USD (policy)"
    )
    for alias, m in out["aliases"].items():
        table.add_row(
            alias,
            str(m["actual_requests"]),
            str(m["simulated_requests"]),
            m["actual_cost_usd"],
            m["simulated_cost_usd"],
        )
    table.add_row(
        "[bold]total[/]",
        str(out["requests"]),
        str(out["requests"]),
        out["actual_cost_usd"],
        out["simulated_cost_usd"],
    )
    console.print(table)
    change = out["per_request_change_usd"]
    if change is not None:
        console.print(
            f"per request: {change['mean']:+.6f} USD (95% CI {change['low']:+.6f} … "
            f"{change['high']:+.6f}); cost ratio {out['cost_ratio']}; "
            f"{out['changed_alias']} of {out['requests']} requests change alias"
        )
    if out["unpriced_requests"]:
        console.print(
            f"[yellow]{out['unpriced_requests']} requests had no price for their alias[/]"
        )


@app.command()
def train(
    cheap_run: str = typer.Argument(..., help="Eval run of the cheap alias (id, prefix or last)."),
    strong_run: str = typer.Argument(..., help="Eval run of the strong alias, same suite."),
    out: Path = typer.Option(Path("router.json"), "--out", "-o", help="Model file to write."),
    target: float = typer.Option(0.95, help="Quality to keep, as a share of the strong model's."),
    scorer: str | None = typer.Option(None, help="Scorer to read quality from (default: first)."),
    holdout: float = typer.Option(0.3, help="Share of cases held out to choose the threshold."),
    seed: int = typer.Option(0, help="Seed of the holdout split."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Train the logreg difficulty router (MiniLM embeddings) from a cheap and a strong run."""
    from pilothouse.evals.store import EvalStore
    from pilothouse.routing import train as trainer

    if not 0 < target <= 1 or not 0 < holdout < 1:
        fail("--target must be in (0, 1] and --holdout in (0, 1)")

    async def load(engine: Any) -> Any:
        store = EvalStore(engine)
        a = await store.load_run(await store.resolve_run_id(cheap_run))
        b = await store.load_run(await store.resolve_run_id(strong_run))
        return a, b

    cheap, strong = run(lambda: with_engine(config, load))

    def embed(texts: Any) -> Any:
        from pilothouse.providers.minilm import MiniLM

        vectors, _tokens = MiniLM().encode(list(texts))
        return vectors

    try:
        model = trainer.train(
            cheap, strong, embed, scorer=scorer, target=target, holdout=holdout, seed=seed
        )
    except PilothouseError as exc:
        fail(exc.message)
    out.write_bytes(orjson.dumps(model))
    report = model["report"]
    if as_json:
        print(orjson.dumps({"path": str(out), "threshold": model["threshold"], **report}).decode())
        return
    table = Table(
        "held-out cases", "quality / strong (95% CI)", "routed cheap (95% CI)", "threshold"
    )
    table.add_row(
        str(report["held_out_cases"]),
        f"{report['quality_share']:.3f} ({report['quality_share_ci95'][0]:.3f}-"
        f"{report['quality_share_ci95'][1]:.3f})",
        f"{report['cheap_share']:.1%} ({report['cheap_share_ci95'][0]:.1%}-"
        f"{report['cheap_share_ci95'][1]:.1%})",
        f"{model['threshold']:.4f}",
    )
    console.print(table)
    console.print(
        f"wrote {out}; use it with routing.difficulty: {{router: logreg, path: {out}}} and "
        f"a rule `difficulty: {{lt: {model['threshold']:.4f}}}` → the cheap alias"
    )
