"""Promotion policies for protected labels: evals, staging, approval — failing closed.

``missing`` lists every requirement the version does not meet; an empty list
means the label may move. A version without eval suites never meets ``evals``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pilothouse.config.schema import LabelPolicy
from pilothouse.errors import ConfigError, GateNotMetError
from pilothouse.releases.registry import PromptRegistry, Version

__all__ = ["GateNotMetError", "check", "parse_age"]

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
        suites = version.content.get("evals") or []
        runs = [r for r in await registry.evidence(version.name, version.version)]
        runs = [r for r in runs if r["hash"] == version.hash]
        if policy.max_evidence_age:
            oldest = datetime.now(UTC) - parse_age(policy.max_evidence_age)
            runs = [r for r in runs if datetime.fromisoformat(r["at"]) >= oldest]
        if not suites:
            missing.append("evals: the version declares no eval suites (policies fail closed)")
        for suite in suites:
            passing = [r for r in runs if r["suite"] == suite and r["passed"]]
            if passing:
                evidence.append(passing[-1])
            else:
                missing.append(f"evals: no passing run of {suite} against hash {version.hash}")
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
