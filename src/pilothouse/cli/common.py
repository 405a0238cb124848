"""Helpers shared by CLI commands: config loading and clean error exits."""

from __future__ import annotations

import asyncio
import difflib
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.config.load import load_settings
from pilothouse.config.schema import Settings
from pilothouse.errors import PilothouseError
from pilothouse.store.db import create_engine, migrate, pending_migrations, redact_url

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

ConfigOption = typer.Option(
    None, "--config", "-c", help="Config file (YAML). Default: the embedded default."
)


ActorOption = typer.Option(
    None, "--actor", help="Principal recorded in the audit log. Default: cli:<user>."
)


def actor_name(actor: str | None) -> str:
    """Who a CLI write acts as: ``--actor``, else ``cli:<login user>``."""
    if actor:
        return actor
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no passwd entry (containers): still attributable to the CLI
        return "cli:unknown"


def settings_from(path: Path | None) -> Settings:
    try:
        return load_settings(path)
    except PilothouseError as exc:
        fail(exc.message)


def fail(message: str, code: int = 2) -> NoReturn:
    # The message is text, not markup: "pip install 'pilothouse[bedrock]'" must keep its extra.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


async def with_engine(config: Path | None, fn: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Open the configured store (migrating it like `serve` would), run ``fn``, close it."""
    settings = settings_from(config)
    engine = create_engine(settings.store.url)
    try:
        try:
            if settings.store.migrate:
                await migrate(engine)
            elif await pending_migrations(engine):
                fail("the store needs migrations: run `pilothouse db upgrade` first")
        except PilothouseError:
            raise
        except Exception as exc:
            fail(f"cannot open store {redact_url(settings.store.url)}: {exc}")
        return await fn(engine)
    finally:
        await engine.dispose()


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; pilothouse errors become one clean line and exit code 2."""
    try:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]
    except PilothouseError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        sys.exit(130)
    raise AssertionError("unreachable")


def did_you_mean(value: str, allowed: Sequence[str]) -> str:
    """`` (did you mean 'day'?)`` for a near miss, else empty."""
    close = difflib.get_close_matches(value, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(value: str, allowed: Sequence[str], option: str) -> str:
    """Refuse a value outside ``allowed``, listing the allowed ones and the nearest."""
    if value not in allowed:
        fail(
            f"{option} must be one of {', '.join(allowed)}; got {value!r}"
            + did_you_mean(value, allowed)
        )
    return value


def check_aliases(settings: Settings, aliases: Sequence[str], option: str) -> None:
    """Refuse model aliases the config does not define (a typo would lock a key out)."""
    known = sorted(settings.models)
    for alias in aliases:
        if alias != "*" and alias not in settings.models:
            fail(
                f"{option}: unknown model alias {alias!r} in {settings.source}; "
                f"known: {', '.join(known) or '-'}" + did_you_mean(alias, known)
            )
