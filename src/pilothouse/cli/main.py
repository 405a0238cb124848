"""Entry point for the `pilothouse` command and its command groups."""

from __future__ import annotations

from pathlib import Path

import typer

from pilothouse import __version__
from pilothouse.cli import (
    audit,
    cache,
    evals,
    keys,
    privacy,
    prompts,
    rag,
    report,
    review,
    rollout,
    routing,
    serve,
    slo,
    teams,
    traces,
    usage,
)
from pilothouse.cli.common import ConfigOption, console, fail, run, settings_from
from pilothouse.cli.group import PilothouseGroup
from pilothouse.config.schema import Settings
from pilothouse.errors import PilothouseError
from pilothouse.providers.base import provider_class

app = typer.Typer(
    help="pilothouse: an OpenAI-compatible LLM gateway with exact costs, traces and evals.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=PilothouseGroup,
)
app.command("serve")(serve.serve)
app.command("usage")(usage.usage)
app.add_typer(keys.app, name="keys")
app.add_typer(teams.teams_app, name="teams")
app.add_typer(teams.users_app, name="users")
app.add_typer(traces.app, name="traces")
app.add_typer(slo.app, name="slo")
app.add_typer(evals.app, name="eval")
app.add_typer(review.app, name="review")
app.add_typer(report.app, name="report")
app.add_typer(audit.app, name="audit")
app.add_typer(rag.app, name="rag")
app.add_typer(cache.app, name="cache")
app.command("worker")(rag.worker)
app.add_typer(prompts.app, name="prompts")
app.add_typer(prompts.routes_app, name="routes")
app.add_typer(rollout.app, name="rollout")
app.add_typer(routing.app, name="routing")
app.command("promote")(prompts.promote)
app.command("lineage")(prompts.lineage)
app.add_typer(privacy.app, name="privacy")

config_app = typer.Typer(help="Validate configuration.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
chaos_app = typer.Typer(help="Fault-injecting upstream for drills.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(chaos_app, name="chaos")


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def _preflight(settings: Settings) -> None:
    for name, cfg in settings.provider_configs.items():
        try:
            provider_class(cfg.type).preflight(cfg)
        except PilothouseError as exc:
            fail(f"{settings.source}: providers.{name}: {exc.message}")


@config_app.command("check")
def config_check(path: Path) -> None:
    """Validate a config file without serving; exit 2 with the key path on error."""
    settings = settings_from(path)
    _preflight(settings)
    console.print(
        f"[green]ok[/] {path}: {len(settings.providers)} provider(s), "
        f"{len(settings.models)} model alias(es): {', '.join(settings.models) or '-'}",
        highlight=False,
    )


@db_app.command("upgrade")
def db_upgrade(config: Path | None = ConfigOption) -> None:
    """Apply pending migrations to the configured store."""
    from pilothouse.store.db import create_engine, migrate, redact_url

    settings = settings_from(config)

    async def go() -> None:
        engine = create_engine(settings.store.url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    run(go)
    console.print(f"[green]ok[/] {redact_url(settings.store.url)} is up to date")


@chaos_app.command("serve")
def chaos_serve(
    port: int = typer.Option(9001, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML with chaos options."),
) -> None:
    """Serve an OpenAI-compatible upstream that injects the configured faults."""
    import msgspec
    import yaml
    from aiohttp import web

    from pilothouse.chaos.plan import ChaosConfig
    from pilothouse.chaos.server import build_chaos_app

    try:
        raw = yaml.safe_load(config.read_text()) if config else {}
    except (OSError, yaml.YAMLError) as exc:
        fail(f"{config}: cannot read chaos options: {exc}")
    if raw is not None and not isinstance(raw, dict):
        fail(f"{config}: chaos options must be a mapping")
    try:
        cfg = msgspec.convert({"type": "chaos", **(raw or {})}, ChaosConfig)
    except (msgspec.ValidationError, ValueError) as exc:
        fail(f"{config}: {exc}")

    def announce(_banner: str) -> None:
        # aiohttp calls this once the socket accepts: drills can wait for this line.
        print(f"chaos upstream listening on http://{host}:{port}/v1", flush=True)

    # A fault injector has nothing to drain: SIGTERM must not wait for hung connections.
    web.run_app(build_chaos_app(cfg), host=host, port=port, print=announce, shutdown_timeout=0.5)


@app.command()
def doctor(config: Path | None = ConfigOption) -> None:
    """Check config, providers' libraries and files, store, migrations, Redis and upstreams."""
    from pilothouse.cli.doctor import run_checks

    settings = settings_from(config)
    ok = run(lambda: run_checks(settings))
    if not ok:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
