"""``pilothouse rollout start|status|promote|rollback|list``: rollouts from the CLI.

Commands act on the configured store (and Redis, when configured) directly,
like ``prompts``, through the same functions as the admin API, so rows and
audit entries are identical; gateways pick changes up at once over Redis or
from their store poll within a second. ``status --watch`` redraws both arms
live until the rollout ends or you press Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import typer
from redis.asyncio import Redis
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.cli.common import (
    ActorOption,
    ConfigOption,
    actor_name,
    console,
    fail,
    run,
    settings_from,
    with_engine,
)
from pilothouse.config.schema import Settings
from pilothouse.releases import notify
from pilothouse.releases.registry import PromptRegistry
from pilothouse.rollout import actions
from pilothouse.rollout.manager import RolloutManager

T = TypeVar("T")
app = typer.Typer(help="Canary, A/B and shadow rollouts with guards.", no_args_is_help=True)
JsonOption = typer.Option(False, "--json", help="Print JSON instead of tables.")
ReasonOption = typer.Option(None, "--reason", help="Why: recorded in the audit log.")


def _with_parts(config: Path | None, fn: Callable[[actions.Parts], Awaitable[T]]) -> T:
    settings = settings_from(config)

    async def go(engine: AsyncEngine) -> T:
        redis = Redis.from_url(settings.redis.url) if settings.redis.url else None
        try:
            return await fn(_parts(settings, engine, redis))
        finally:
            if redis is not None:
                await redis.aclose()

    return run(lambda: with_engine(config, go))


def _parts(settings: Settings, engine: AsyncEngine, redis: Redis | None) -> actions.Parts:
    async def label_moved(name: str, label: str) -> None:
        if redis is not None:
            with contextlib.suppress(Exception):  # the store poll still delivers it
                await notify.publish(redis, settings.redis, [(name, label)])

    manager = RolloutManager(settings.rollouts, engine, redis, settings.redis.prefix)
    return actions.Parts(
        manager=manager,
        registry=PromptRegistry(engine),
        defaults=settings.rollouts.defaults,
        releases=settings.releases,
        aliases=settings.models.keys(),
        label_moved=label_moved,
    )


def _print(value: Any) -> None:
    print(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def parse_guard(text: str) -> dict[str, Any]:
    """``error_rate:max_increase=0.01`` → ``{"metric": "error_rate", "max_increase": 0.01}``."""
    metric, sep, rest = text.partition(":")
    name, eq, value = rest.partition("=")
    if not sep or not eq:
        fail(f"--guard takes METRIC:LIMIT=VALUE, e.g. error_rate:max_increase=0.01 (got {text!r})")
    try:
        return {"metric": metric, name: float(value)}
    except ValueError:
        fail(f"--guard {text!r}: {value!r} is not a number")


@app.command()
def start(
    prompt: str | None = typer.Option(None, "--prompt", help="Prompt name (with --label)."),
    label: str | None = typer.Option(None, "--label", help="Label whose traffic is split."),
    candidate: int | None = typer.Option(None, "--candidate", help="Candidate version."),
    alias: str | None = typer.Option(None, "--alias", help="Model alias whose traffic is split."),
    candidate_alias: str | None = typer.Option(
        None, "--candidate-alias", help="Alias that gets the candidate share."
    ),
    mode: str = typer.Option("canary", "--mode", help="canary, ab or shadow."),
    percent: float | None = typer.Option(None, "--percent", help="Candidate share (canary)."),
    split: float | None = typer.Option(None, "--split", help="Candidate share (ab)."),
    steps: str | None = typer.Option(None, "--steps", help="Progressive canary, e.g. 5,25,50,100."),
    step_after: int | None = typer.Option(None, "--step-after", help="Candidate requests a step."),
    sticky: str = typer.Option("none", "--sticky", help="user, session, key or none."),
    bill_shadow: bool = typer.Option(False, "--bill-shadow", help="Shadow costs hit budgets."),
    guard: list[str] = typer.Option([], "--guard", help="METRIC:LIMIT=VALUE (repeatable)."),
    min_samples: int | None = typer.Option(
        None, "--min-samples", help="Requests per arm before a guard may decide."
    ),
    alpha: float | None = typer.Option(
        None, "--alpha", help="Significance level of the guards' tests."
    ),
    on_candidate_error: str | None = typer.Option(
        None, "--on-candidate-error", help="baseline (retry on the baseline) or fail."
    ),
    reason: str | None = ReasonOption,
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Start a rollout (one running per label or alias)."""
    body: dict[str, Any] = {"mode": mode, "sticky": sticky}
    if prompt is not None:
        body.update(prompt=prompt, label=label, candidate=candidate)
    if alias is not None:
        body.update(alias=alias, candidate_alias=candidate_alias)
    optional = {
        "percent": percent,
        "split": split,
        "min_samples": min_samples,
        "alpha": alpha,
        "on_candidate_error": on_candidate_error,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if bill_shadow:
        body["bill_shadow"] = True
    if steps is not None:
        try:
            body["steps"] = [float(s) for s in steps.split(",")]
        except ValueError:
            fail(f"--steps takes numbers separated by commas, got {steps!r}")
        body["step_after"] = {"requests": step_after} if step_after is not None else None
    if guard:
        body["guards"] = [parse_guard(g) for g in guard]
    who = actor_name(actor)
    ro = _with_parts(config, lambda p: actions.start(p, body, actor=who, reason=reason))
    if as_json:
        _print(ro.public())
        return
    console.print(
        f"started [bold]{ro.id}[/]: {ro.mode} of {ro.candidate_name()} on {ro.target} "
        f"at {ro.share:.0%}"
    )


@app.command("list")
def list_cmd(
    state: str | None = typer.Option(None, "--state", help="running, promoted, rolled_back…"),
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Rollouts, newest first."""
    rows = _with_parts(config, lambda p: p.manager.store.list_rollouts(state))
    if as_json:
        _print([r.public() for r in rows])
        return
    table = Table("id", "state", "mode", "target", "candidate", "share", "started", "by")
    for r in rows:
        table.add_row(
            r.id,
            r.state,
            r.mode,
            r.target,
            r.candidate_name(),
            f"{r.share:.0%}",
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            r.created_by,
        )
    console.print(table)


def _num(value: Any, digits: int) -> str:
    """A number to ``digits`` significant digits; exact strings (USD) as they are."""
    if value is None:
        return "—"
    if isinstance(value, int | float):
        return f"{value:.{digits}g}"
    return str(value)


def _fmt(figure: Any, digits: int = 4) -> str:
    if not isinstance(figure, dict):
        return _num(figure, digits)
    value, ci = figure.get("value"), figure.get("ci") or [None, None]
    if value is None:
        return "—"
    ends = ", ".join(_num(v, digits) for v in ci)
    return f"{_num(value, digits)} [{ends}]"


def render(status: dict[str, Any]) -> Group:
    """Both arms side by side, the guards against their boundaries, SRM and recommendation."""
    arms = status["arms"]
    head = Text.assemble(
        (status["id"], "bold"),
        f"  {status['state']}  {status['mode']} on {status['target']}  ",
        f"candidate share {status['share']:.0%}",
    )
    table = Table(title="arms (value [anytime-valid interval])")
    table.add_column("", no_wrap=True)  # row names stay whole in a narrow terminal
    table.add_column("baseline")
    table.add_column("candidate")
    rows = [
        ("requests", "requests"),
        ("errors", "errors"),
        ("error rate", "error_rate"),
        ("latency p50 s", "latency_p50_s"),
        ("latency p95 s", "latency_p95_s"),
        ("TTFT mean s", "ttft_mean_s"),
        ("cost / request USD", "cost_per_request_usd"),
    ]
    for title, name in rows:
        table.add_row(title, *(_fmt(arms[a].get(name)) for a in ("baseline", "candidate")))
    table.add_row(
        "feedback success",
        *(_fmt(arms[a]["feedback"]["success_rate"]) for a in ("baseline", "candidate")),
    )
    table.add_row(
        "cost / successful task USD",
        *(
            _fmt(arms[a]["feedback"]["cost_per_successful_task_usd"])
            for a in ("baseline", "candidate")
        ),
    )
    scorers = sorted(set(arms["baseline"]["online_eval"]) | set(arms["candidate"]["online_eval"]))
    for scorer in scorers:
        table.add_row(
            f"eval {scorer}",
            *(_fmt(arms[a]["online_eval"].get(scorer)) for a in ("baseline", "candidate")),
        )
    guards = Table(title="guards")
    guards.add_column("guard", no_wrap=True)
    for name in ("state", "statistic", "boundary", "samples b/c"):
        guards.add_column(name)
    for g in status["guards"]:
        samples = g.get("samples", {})
        guards.add_row(
            g["metric"],
            g["state"],
            _fmt(g.get("statistic")),
            _fmt(g.get("boundary")),
            f"{samples.get('baseline', 0)}/{samples.get('candidate', 0)}",
        )
    srm = status["srm"]
    srm_line = (
        f"SRM: observed {srm.get('observed')} vs target {srm.get('target')}, "
        f"chi-square p = {_fmt(srm.get('p_value'))}"
        + ("  [bold red]MISMATCH[/]" if srm.get("mismatch") else "")
        if srm.get("checked")
        else f"SRM: not checked ({srm.get('reason', 'no traffic yet')})"
    )
    rec = status["recommendation"]
    parts: list[Any] = [head, table]
    if status["guards"]:
        parts.append(guards)
    parts += [Text.from_markup(srm_line), Text(f"recommendation: {rec['verdict']}")]
    if status.get("verdict"):
        parts.append(Text(f"rolled back by guard {status['verdict'].get('guard')}", style="red"))
    return Group(*parts)


@app.command()
def status(
    rollout_id: str,
    watch: bool = typer.Option(False, "--watch", help="Redraw live until the rollout ends."),
    interval: float = typer.Option(1.0, "--interval", help="Seconds between redraws."),
    config: Path | None = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Both arms' figures with intervals, guard verdicts, SRM check, recommendation."""

    async def once(p: actions.Parts) -> dict[str, Any]:
        return await actions.status(p, await p.manager.store.get(rollout_id))

    if not watch:
        out = _with_parts(config, once)
        if as_json:
            _print(out)
        else:
            console.print(render(out))
        return

    async def live(p: actions.Parts) -> None:
        current = await once(p)
        with Live(render(current), console=console, refresh_per_second=4) as view:
            while current["state"] == "running":
                await asyncio.sleep(interval)
                current = await once(p)
                view.update(render(current))

    _with_parts(config, live)


@app.command()
def promote(
    rollout_id: str,
    reason: str | None = ReasonOption,
    force: bool = typer.Option(
        False, "--force", help="Override the label policy (needs --reason)."
    ),
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
) -> None:
    """Promote the candidate; a prompt's label moves through its release policy."""
    who = actor_name(actor)
    out = _with_parts(
        config,
        lambda p: actions.promote(p, rollout_id, actor=who, reason=reason, force=force),
    )
    moved = out.get("label_move")
    suffix = f"; {out['label']} → version {moved['version']}" if moved else ""
    console.print(f"promoted {rollout_id}{suffix}")


@app.command()
def rollback(
    rollout_id: str,
    reason: str | None = ReasonOption,
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
) -> None:
    """Send all traffic back to the baseline on every replica (the label does not move)."""
    who = actor_name(actor)
    _with_parts(config, lambda p: actions.rollback(p, rollout_id, actor=who, reason=reason))
    console.print(f"rolled back {rollout_id}")
