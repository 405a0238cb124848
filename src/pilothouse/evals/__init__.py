"""Evaluations: suites of cases, scorers, statistics with intervals, reports and gates.

The Python API mirrors ``pilothouse eval``: load a suite, open a gateway link,
run it into a store, and read the outcome::

    suite = load_suite("examples/evals/suite.yaml")
    async with open_link(settings=load_settings(None)) as link:
        outcome = await run_suite(suite, EvalStore(engine), link)
    print(outcome.exit_code, outcome.summary.stat("exact.pass_rate"))
"""

from pilothouse.evals.errors import EvalError, ScoreError, SuiteError, TargetUnavailable
from pilothouse.evals.link import GatewayLink, open_link
from pilothouse.evals.model import Case, RunInfo, RunRecord, Sample, Verdict
from pilothouse.evals.runner import RunOptions, RunOutcome, run_suite
from pilothouse.evals.scorers import Scorer, ScorerConfig, register_scorer
from pilothouse.evals.store import EvalStore
from pilothouse.evals.suite import Suite, load_suite

__all__ = [
    "Case",
    "EvalError",
    "EvalStore",
    "GatewayLink",
    "RunInfo",
    "RunOptions",
    "RunOutcome",
    "RunRecord",
    "Sample",
    "ScoreError",
    "Scorer",
    "ScorerConfig",
    "Suite",
    "SuiteError",
    "TargetUnavailable",
    "Verdict",
    "load_suite",
    "open_link",
    "register_scorer",
    "run_suite",
]
