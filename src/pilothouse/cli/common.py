"""Helpers shared by CLI commands: config loading and clean error exits."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import typer
from rich.console import Console

from pilothouse.config.load import load_settings
from pilothouse.config.schema import Settings
from pilothouse.errors import PilothouseError

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

ConfigOption = typer.Option(
    None, "--config", "-c", help="Config file (YAML). Default: the embedded default."
)


def settings_from(path: Path | None) -> Settings:
    try:
        return load_settings(path)
    except PilothouseError as exc:
        fail(exc.message)


def fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; pilothouse errors become one clean line and exit code 2."""
    try:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]
    except PilothouseError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        sys.exit(130)
    raise AssertionError("unreachable")
