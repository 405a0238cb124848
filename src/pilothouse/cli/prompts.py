"""``pilothouse prompts …``, ``promote``, ``lineage`` and ``routes``: releases from the CLI.

Commands work on the configured store directly (like ``keys``) and act as
``cli:<user>`` unless ``--actor`` names a principal. A label move is published
on the configured Redis, so every running gateway forgets the old version at
once (their one-second store poll covers a missing or unreachable Redis).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import typer
import yaml

from pilothouse.cli.common import (
    ActorOption,
    ConfigOption,
    actor_name,
    console,
    err_console,
    fail,
    run,
    settings_from,
    with_engine,
)
from pilothouse.errors import InvalidRequestError
from pilothouse.releases import notify
from pilothouse.releases import routes as route_versions
from pilothouse.releases.bundle import content_hash, normalize
from pilothouse.releases.lineage import lineage as lineage_of
from pilothouse.releases.promote import promote as promote_version
from pilothouse.releases.registry import PromptRegistry
from pilothouse.releases.render import render_messages

if TYPE_CHECKING:
    from pilothouse.releases.evidence import EvidenceRun

T = TypeVar("T")
app = typer.Typer(help="Versioned prompt bundles: push, label, render, sync.", no_args_is_help=True)
routes_app = typer.Typer(
    help="Route versions (the `models` config over time).", no_args_is_help=True
)
ReasonOption = typer.Option(None, "--reason", help="Why: recorded with the change.")


def _registry(config: Path | None, fn: Callable[[PromptRegistry], Awaitable[T]]) -> T:
    return run(lambda: with_engine(config, lambda engine: fn(PromptRegistry(engine))))


def _json(value: Any) -> None:
    print(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _ref(text: str) -> tuple[str, str]:
    name, sep, ref = text.partition("@")
    if not sep or not name or not ref:
        fail(f"expected NAME@REF (a version number or label), got {text!r}")
    return name, ref


def load_bundle(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        fail(f"{path}: {exc}")
    if not isinstance(raw, dict):
        fail(f"{path}: a prompt file is a YAML mapping")
    return raw


@app.command()
def push(
    file: Path,
    reason: str | None = ReasonOption,
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
) -> None:
    """Push a prompt file; identical content returns the existing version."""
    raw = load_bundle(file)
    who = actor_name(actor)
    version, created = _registry(config, lambda r: r.push(raw, actor=who, reason=reason))
    state = "created" if created else "unchanged"
    print(f"{version.name}@{version.version} {version.hash} {state}")


@app.command("list")
def list_cmd(config: Path | None = ConfigOption) -> None:
    """Prompts with their latest version and labels."""
    rows = _registry(config, lambda r: r.list_prompts())
    for row in rows:
        held = " ".join(f"{k}={v}" for k, v in sorted(row["labels"].items()))
        print(f"{row['name']}\tlatest={row['latest_version']}\t{held}")


@app.command()
def show(ref: str, config: Path | None = ConfigOption) -> None:
    """NAME: versions and labels; NAME@REF: the full bundle of that version."""
    if "@" not in ref:
        _json(_registry(config, lambda r: r.describe(ref)))
        return
    name, r = _ref(ref)
    version, label = _registry(config, lambda reg: reg.resolve(name, r))
    _json({**version.public(), "label": label})


@app.command()
def diff(name: str, a: str, b: str, config: Path | None = ConfigOption) -> None:
    """A unified diff of two versions (numbers or labels) of one prompt."""

    async def go(reg: PromptRegistry) -> tuple[Any, Any]:
        return (await reg.resolve(name, a))[0], (await reg.resolve(name, b))[0]

    left, right = _registry(config, go)
    lines = [
        yaml.safe_dump(v.content, sort_keys=True, allow_unicode=True).splitlines(keepends=True)
        for v in (left, right)
    ]
    out = difflib.unified_diff(
        lines[0], lines[1], f"{name}@{left.version}", f"{name}@{right.version}"
    )
    print("".join(out), end="")


@app.command()
def label(
    name: str,
    ref: str,
    label_name: str = typer.Argument(..., metavar="LABEL"),
    reason: str | None = ReasonOption,
    force: bool = typer.Option(False, "--force", help="Override the label's policy."),
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
) -> None:
    """Point LABEL at a version (checked against `releases.labels`)."""
    _move(name, ref, label_name, reason, force, actor, config)


def _move(
    name: str,
    ref: str,
    label_name: str,
    reason: str | None,
    force: bool,
    actor: str | None,
    config: Path | None,
) -> None:
    settings = settings_from(config)
    who = actor_name(actor)

    async def go(reg: PromptRegistry) -> dict[str, Any]:
        version, _ = await reg.resolve(name, ref)
        return await promote_version(
            reg,
            settings.releases,
            name,
            label_name,
            version.version,
            actor=who,
            reason=reason,
            force=force,
        )

    moved = _registry(config, go)
    _announce(settings.redis, [(name, label_name)])
    forced = " (forced)" if moved["forced"] else ""
    print(f"{name}/{label_name}: {moved['previous']} -> {moved['version']}{forced}")


def _announce(redis: Any, moves: list[tuple[str, str]]) -> None:
    """Tell running gateways about committed moves (a warning if Redis is unreachable)."""
    warning = run(lambda: notify.publish_from_cli(redis, moves))
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)


@app.command()
def render(
    ref: str,
    var: list[str] = typer.Option([], "--var", help="k=v (repeatable)."),
    config: Path | None = ConfigOption,
) -> None:
    """Render a version's messages with variables, as the gateway would."""
    name, r = _ref(ref)
    values: dict[str, Any] = {}
    for item in var:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--var expects k=v, got {item!r}")
        values[key] = value
    version, _ = _registry(config, lambda reg: reg.resolve(name, r))
    try:
        messages = render_messages(version.content, values)
    except InvalidRequestError as exc:
        fail(exc.message)
    _json({"messages": messages, "params": version.content["params"]})


@app.command()
def card(ref: str, config: Path | None = ConfigOption) -> None:
    """The prompt card (intended use, limitations, risks) and its eval evidence."""
    name, r = _ref(ref)

    async def go(reg: PromptRegistry) -> dict[str, Any]:
        version, _ = await reg.resolve(name, r)
        content = version.content
        return {
            "name": name,
            "version": version.version,
            "hash": version.hash,
            "description": content["description"],
            "card": content["card"],
            "evals": content["evals"],
            "evidence": await reg.evidence(name, version.version),
        }

    _json(_registry(config, go))


@app.command()
def approve(
    name: str,
    version: int,
    label_name: str = typer.Option(..., "--label", help="The label this approval is for."),
    reason: str | None = ReasonOption,
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
) -> None:
    """Approve a version for a label (four eyes: not by its author or promoter)."""
    who = actor_name(actor)
    _registry(config, lambda r: r.approve(name, version, label_name, actor=who, reason=reason))
    print(f"{who} approved {name}@{version} for {label_name}")


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        fail(f"{directory} is not a directory")
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml"))


@app.command()
def sync(
    directory: Path,
    label_name: str | None = typer.Option(None, "--label", help="Also point LABEL at each."),
    reason: str | None = ReasonOption,
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
) -> None:
    """Push every changed prompt file in DIR (and optionally label the results)."""
    bundles = [load_bundle(p) for p in _files(directory)]
    who = actor_name(actor)
    settings = settings_from(config)

    moved: list[tuple[str, str]] = []

    async def go(reg: PromptRegistry) -> list[str]:
        lines = []
        for raw in bundles:
            version, created = await reg.push(raw, actor=who, reason=reason or "prompts sync")
            line = f"{version.name}@{version.version} {'created' if created else 'unchanged'}"
            if label_name and await reg.label_version(version.name, label_name) != version.version:
                await promote_version(
                    reg,
                    settings.releases,
                    version.name,
                    label_name,
                    version.version,
                    actor=who,
                    reason=reason or "prompts sync",
                )
                moved.append((version.name, label_name))
                line += f", {label_name} -> {version.version}"
            lines.append(line)
        return lines

    try:
        lines = _registry(config, go)
    finally:  # moves made before a refusal stopped the sync are announced too
        _announce(settings.redis, moved)
    for line in lines:
        print(line)


@app.command()
def drift(
    directory: Path,
    label_name: str = typer.Option("prod", "--label", help="The label to compare against."),
    config: Path | None = ConfigOption,
) -> None:
    """Exit 1 listing every prompt whose labelled content differs from its file."""
    files = {str(p): load_bundle(p) for p in _files(directory)}

    async def go(reg: PromptRegistry) -> list[str]:
        drifted = []
        for path, raw in files.items():
            try:
                bundle = normalize(raw)
            except InvalidRequestError as exc:
                drifted.append(f"{path}: invalid: {exc.message}")
                continue
            number = await reg.label_version(bundle["name"], label_name)
            if number is None:
                drifted.append(f"{bundle['name']}: no {label_name} label ({path})")
                continue
            held = await reg.version(bundle["name"], number)
            if held.hash != content_hash(bundle):
                drifted.append(
                    f"{bundle['name']}: {label_name} serves v{number} ({held.hash[:12]}), "
                    f"{path} is {content_hash(bundle)[:12]}"
                )
        return drifted

    drifted = _registry(config, go)
    for line in drifted:
        print(line)
    if drifted:
        raise typer.Exit(1)
    print(f"no drift: {len(files)} prompt file(s) match {label_name}")


def promote(
    name: str,
    version: int = typer.Option(..., "--version", help="The version to promote."),
    to: str = typer.Option(..., "--to", help="The label, e.g. staging or prod."),
    reason: str | None = ReasonOption,
    force: bool = typer.Option(False, "--force", help="Override the policy (needs --reason)."),
    run_evals: bool = typer.Option(
        True, "--run/--no-run", help="Run the bundle's eval suites that have no usable run yet."
    ),
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
) -> None:
    """Move a label to a version when its policy holds, running the missing eval runs first.

    Missing runs go through an in-process gateway built from --config, against
    exactly this version, compared with the label's current holder as baseline.
    """
    if run_evals and not force:
        from pilothouse.releases.evidence import run_missing

        settings = settings_from(config)

        async def go(reg: PromptRegistry) -> Any:
            target = await reg.version(name, version)
            return await run_missing(
                reg,
                settings,
                settings.releases.labels.get(to),
                target,
                to,
                env=dict(os.environ),
                report=_report_run,
            )

        _registry(config, go)
    _move(name, str(version), to, reason, force, actor, config)


def _report_run(run: EvidenceRun) -> None:
    if not run.run_id:
        err_console.print(f"eval {run.suite} could not run: {run.failed[0]}", highlight=False)
        return
    verdict = "passed its gates" if run.exit_code == 0 else "did NOT pass"
    against = f", baseline {run.baseline_run}" if run.baseline_run else ""
    err_console.print(
        f"eval {run.suite} on v{run.version} ({run.role}{against}): run {run.run_id} {verdict}",
        highlight=False,
    )
    for line in run.failed:
        err_console.print(f"  - {line}", highlight=False)


def lineage(request_id: str, config: Path | None = ConfigOption) -> None:
    """Which key, alias, route version, prompt version and promotion produced a request."""
    _json(run(lambda: with_engine(config, lambda e: lineage_of(e, request_id))))


@routes_app.command("list")
def routes_list(config: Path | None = ConfigOption) -> None:
    """Route versions, newest first."""
    for v in run(lambda: with_engine(config, route_versions.list_versions)):
        console.print(
            f"{v['hash'][:12]}  {v['at']}  {v['actor']}  {', '.join(sorted(v['models']))}",
            highlight=False,
        )


@routes_app.command("show")
def routes_show(ref: str, config: Path | None = ConfigOption) -> None:
    """One route version (by hash prefix or id)."""
    _json(run(lambda: with_engine(config, lambda e: route_versions.get_version(e, ref))))


@routes_app.command("diff")
def routes_diff(a: str, b: str, config: Path | None = ConfigOption) -> None:
    """What changed in `models` between two route versions."""

    async def go(engine: Any) -> str:
        left = await route_versions.get_version(engine, a)
        right = await route_versions.get_version(engine, b)
        return route_versions.diff(left, right)

    print(run(lambda: with_engine(config, go)), end="")
