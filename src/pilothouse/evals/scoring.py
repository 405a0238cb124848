"""Scoring one output with a list of scorers; shared by offline runs and online sampling."""

from __future__ import annotations

from typing import Any

from pilothouse.evals.errors import ScoreError, TargetUnavailable
from pilothouse.evals.model import Case, Verdict
from pilothouse.evals.scorers.base import ScoreContext, Scorer


async def score_output(
    scorers: list[Scorer[Any]], case: Case, output: str, ctx: ScoreContext
) -> list[Verdict]:
    """Every applicable scorer's verdict; a crashing scorer is that verdict's error.

    :class:`TargetUnavailable` (e.g. the judge's model is not served) is not a
    verdict: it propagates, because every other case would hit it too.
    """
    verdicts = []
    for scorer in scorers:
        if not scorer.applies(case):
            continue
        try:
            verdict = await scorer.evaluate(case, output, ctx)
        except TargetUnavailable:
            raise
        except ScoreError as exc:
            verdict = scorer.error(exc.message)
        except Exception as exc:
            verdict = scorer.error(f"scorer {scorer.name} crashed: {type(exc).__name__}: {exc}")
        verdicts.append(verdict)
    return verdicts
