"""The root command class: every CLI failure is one ``error:`` line and exit code 2.

Typer's default prints usage errors in a multi-line box and lets unexpected exceptions
escape as tracebacks; a user (or a script parsing stderr) needs one line that says what
was wrong. Flags also lose the ``<bool>`` type label Typer puts after them in help.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from typer import _click as click
from typer.core import TyperGroup
from typer.exceptions import Abort

from pilothouse.errors import PilothouseError

DEBUG_ENV = "PILOTHOUSE_DEBUG"


def _error_line(message: str) -> None:
    text = " ".join(message.split())
    sys.stderr.write(f"error: {text}\n")
    sys.stderr.flush()


def _drop_flag_types(command: Any) -> None:
    """A flag takes no value, so its help row shows no type."""
    help_option = command.get_help_option(click.Context(command))
    for param in [*getattr(command, "params", ()), help_option]:
        if param is None:
            continue
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in (getattr(command, "commands", None) or {}).values():
        _drop_flag_types(sub)


class PilothouseGroup(TyperGroup):
    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        _drop_flag_types(self)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            _error_line(exc.format_message() + hint)
            sys.exit(2)
        except click.exceptions.ClickException as exc:
            _error_line(exc.format_message())
            sys.exit(2)
        except Abort:
            _error_line("aborted")
            sys.exit(1)
        except PilothouseError as exc:
            _error_line(exc.message)
            sys.exit(2)
        except (KeyboardInterrupt, EOFError):
            sys.exit(130)
        except OSError as exc:
            if getattr(exc, "errno", None) == 32:  # EPIPE: the reader went away (| head)
                sys.exit(1)
            if os.environ.get(DEBUG_ENV):
                raise
            _error_line(f"{exc}")
            sys.exit(2)
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            _error_line(f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for details)")
            sys.exit(2)
        sys.exit(rv if isinstance(rv, int) else 0)
