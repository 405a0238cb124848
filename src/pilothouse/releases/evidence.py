"""Producing the eval evidence a promotion lacks: run the bundle's suites on the version.

``pilothouse promote`` calls :func:`run_missing` before checking the policy.
Each suite without a usable run is run against ``prompt:NAME@V`` through an
embedded gateway (the same pipeline, store and models as production), with
the label's current holder as the baseline of its paired gates; the holder's
own run is made first when the store has none. Finished runs are recorded as
evidence, so the policy check that follows judges exactly what was run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pilothouse.config.schema import LabelPolicy, Settings
from pilothouse.evals.errors import EvalError
from pilothouse.evals.runner import RunOptions, RunOutcome, run_suite
from pilothouse.evals.store import EvalStore
from pilothouse.evals.suite import Suite, load_suite
from pilothouse.evals.targets import ModelTarget
from pilothouse.releases import evalruns, gates
from pilothouse.releases.registry import PromptRegistry
from pilothouse.releases.versions import Version


@dataclass(frozen=True, slots=True)
class EvidenceRun:
    """One run made for a promotion (of the candidate, or of the holder as baseline)."""

    suite: str
    version: int
    run_id: str
    exit_code: int
    role: str  # "candidate" | "baseline"
    baseline_run: str | None
    failed: list[str]


Report = Callable[[EvidenceRun], None]


def bound_variable(suite: Suite, content: Mapping[str, Any]) -> str | None:
    """The prompt variable a case's input fills: the suite's own binding, else the
    bundle's one required variable without a default (else the input is a user message)."""
    target = suite.target
    if isinstance(target, ModelTarget) and target.is_prompt and target.variable:
        return target.variable
    required = [
        n
        for n, spec in (content.get("variables") or {}).items()
        if spec.get("required") and spec.get("default") is None
    ]
    return required[0] if len(required) == 1 else None


def for_version(suite: Suite, name: str, number: int, content: Mapping[str, Any]) -> Suite:
    """The suite with its target pointed at exactly this immutable version."""
    target = ModelTarget(evalruns.target_of(name, number), None, bound_variable(suite, content))
    return dataclasses.replace(suite, target=target)


async def run_missing(
    registry: PromptRegistry,
    settings: Settings,
    policy: LabelPolicy | None,
    version: Version,
    label: str,
    *,
    env: Mapping[str, str],
    report: Report | None = None,
) -> list[EvidenceRun]:
    """Run every bundle suite that has no usable evidence for ``label``; record the runs."""
    if policy is None or "evals" not in policy.requires:
        return []
    await registry.collect_runs(version)
    found, _missing = await gates.eval_evidence(registry, policy, version, label)
    todo = [suite for suite, evidence in found.items() if evidence is None]
    if not todo:
        return []
    from pilothouse.evals.link import open_link  # the embedded gateway: only when running

    holder_number = await gates.baseline_version(registry, version, label)
    holder = await registry.version(version.name, holder_number) if holder_number else None
    store = EvalStore(registry.engine)
    made: list[EvidenceRun] = []

    def note(path: str, v: Version, role: str, outcome: RunOutcome, base: str | None) -> None:
        run = EvidenceRun(
            path,
            v.version,
            outcome.record.info.id,
            outcome.exit_code,
            role,
            base,
            [f"{g.name}: {g.detail}" for g in outcome.gates if g.status in ("fail", "error")]
            + outcome.problems,
        )
        made.append(run)
        if report is not None:
            report(run)

    async with open_link(settings=settings) as link:
        for path in todo:
            try:
                await _run_one(path, version, holder, store, link, env, note)
            except EvalError as exc:  # the suite cannot run: the policy check says what's missing
                failed = EvidenceRun(path, version.version, "", 2, "candidate", None, [exc.message])
                made.append(failed)
                if report is not None:
                    report(failed)
    await registry.collect_runs(version)
    return made


async def _run_one(
    path: str,
    version: Version,
    holder: Version | None,
    store: EvalStore,
    link: Any,
    env: Mapping[str, str],
    note: Callable[[str, Version, str, RunOutcome, str | None], None],
) -> None:
    suite = load_suite(path, env=dict(env))
    options = RunOptions()
    if holder is not None:
        base_id = await evalruns.latest_completed(store.engine, holder.name, holder.version, path)
        if base_id is None:
            base_suite = for_version(suite, holder.name, holder.version, holder.content)
            outcome = await run_suite(base_suite, store, link)
            base_id = outcome.record.info.id
            note(path, holder, "baseline", outcome, None)
        options = RunOptions(baseline=await store.load_run(base_id), baseline_ref=base_id)
    candidate = for_version(suite, version.name, version.version, version.content)
    outcome = await run_suite(candidate, store, link, options)
    note(path, version, "candidate", outcome, options.baseline_ref)
