"""Eval errors: each is a :class:`PilothouseError`, so the CLI prints one clean line.

They live here until the lead folds them into ``pilothouse.errors``; the
classes subclass the package hierarchy, so callers may already catch
``PilothouseError``.
"""

from __future__ import annotations

from pilothouse.errors import PilothouseError


class EvalError(PilothouseError):
    """An evaluation could not be completed (bad suite, unreachable target, broken store)."""

    status = 400
    type = "eval_error"


class SuiteError(EvalError):
    """The suite file, its dataset or a scorer option is invalid; names file and key path."""

    code = "invalid_suite"


class TargetUnavailable(EvalError):
    """The target cannot serve any case (down, unauthorised, unknown model): stop the run."""

    code = "target_unavailable"


class ScoreError(EvalError):
    """One scorer could not score one output (e.g. unparseable judge output).

    Recorded on the case as an error, never turned into a zero.
    """

    code = "score_error"
