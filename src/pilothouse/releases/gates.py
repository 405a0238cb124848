"""Promotion policies for protected labels: evals, staging, approval — failing closed.

``missing`` lists every requirement the version does not meet; an empty list
means the label may move. A version without eval suites never meets ``evals``.
An eval run is evidence for ``evals`` when it targeted exactly this version,
passed every gate, and — if its gates compare with a baseline while another
version holds the label — its baseline was a run of that current holder
(a rollback to a version that held the label before needs no new comparison).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pilothouse.config.schema import LabelPolicy
from pilothouse.errors import ConfigError, GateNotMetError
from pilothouse.releases import evalruns
from pilothouse.releases.registry import PromptRegistry
from pilothouse.releases.versions import Version

__all__ = ["GateNotMetError", "baseline_version", "check", "eval_evidence", "parse_age"]

_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(value: str) -> timedelta:
    match = _AGE.match(value)
    if not match:
        raise ConfigError(f"releases: max_evidence_age {value!r} must look like 7d or 12h")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


async def check(
    registry: PromptRegistry,
    policy: LabelPolicy | None,
    version: Version,
    label: str,
    *,
    promoter: str,
) -> tuple[list[str], list[dict[str, Any]]]:
    """(missing requirements, evidence used) for moving ``label`` to ``version``."""
    if policy is None:
        return [], []
    missing: list[str] = []
    evidence: list[dict[str, Any]] = []
    if "evals" in policy.requires:
        found, problems = await eval_evidence(registry, policy, version, label)
        missing.extend(problems)
        evidence.extend(e for e in found.values() if e is not None)
    if "staging" in policy.requires and not await registry.ever_held(
        version.name, version.version, "staging"
    ):
        missing.append(f"staging: {version.name}@{version.version} has never held staging")
    if "approval" in policy.requires:
        approvals = await registry.approvals(version.name, version.version, label)
        valid = {a["who"] for a in approvals if a["who"] not in (version.author, promoter)}
        if len(valid) < policy.approvals:
            missing.append(
                f"approval: {len(valid)} of {policy.approvals} approval(s) for {label} by a "
                "principal other than the author and the promoter"
            )
    return missing, evidence


async def baseline_version(registry: PromptRegistry, version: Version, label: str) -> int | None:
    """The version a candidate is compared with: the label's current holder, if another.

    A version that held this label before needs no new comparison: moving the label
    back to it is the rollback, and its evidence was judged when it first took the label.
    """
    holder = await registry.label_version(version.name, label)
    if holder is None or holder == version.version:
        return None
    if await registry.ever_held(version.name, version.version, label):
        return None
    return holder


async def eval_evidence(
    registry: PromptRegistry, policy: LabelPolicy, version: Version, label: str
) -> tuple[dict[str, dict[str, Any] | None], list[str]]:
    """Per bundle suite, the run that meets ``evals`` (or None), and what is missing."""
    suites = version.content.get("evals") or []
    if not suites:
        return {}, ["evals: the version declares no eval suites (policies fail closed)"]
    holder = await baseline_version(registry, version, label)
    runs = [r for r in await registry.evidence(version.name, version.version)]
    runs = [r for r in runs if r["hash"] == version.hash]
    if policy.max_evidence_age:
        oldest = datetime.now(UTC) - parse_age(policy.max_evidence_age)
        runs = [r for r in runs if datetime.fromisoformat(r["at"]) >= oldest]
    compared = await evalruns.baselines(registry.engine, [r["run_id"] for r in runs])
    wanted = evalruns.target_of(version.name, holder) if holder is not None else None

    def against_holder(run: dict[str, Any]) -> bool:
        if wanted is None or not evalruns.uses_baseline(run.get("gates")):
            return True
        return compared.get(run["run_id"]) == wanted

    found: dict[str, dict[str, Any] | None] = {}
    missing: list[str] = []
    for suite in suites:
        mine = [r for r in runs if r["suite"] == suite]
        usable = [r for r in mine if r["passed"] and against_holder(r)]
        if usable:
            found[suite] = {**usable[-1], "baseline": compared.get(usable[-1]["run_id"])}
            continue
        found[suite] = None
        text = f"evals: no passing run of {suite} against hash {version.hash}"
        if holder is not None:
            text += f" compared with {label}'s current holder v{holder}"
        if mine:
            last = mine[-1]
            failed = evalruns.failed_gates(last.get("gates"))
            if not last["passed"]:
                why = "; ".join(failed) if failed else "the run did not complete"
                text += f" (run {last['run_id']} failed: {why})"
            else:
                seen = compared.get(last["run_id"]) or "no baseline"
                text += f" (run {last['run_id']} was compared with {seen})"
        missing.append(text)
    return found, missing
