"""Moving a label under its policy: check, refuse (409 gate_not_met) or force, then move.

Everything that moves a label with policy checks (API, CLI, console) calls
:func:`promote`; it calls :meth:`PromptRegistry.move_label`, the one writer.
A refusal is on record too: one ``label.refused`` audit row naming what was missing.
"""

from __future__ import annotations

from typing import Any

from pilothouse import audit
from pilothouse.config.schema import ReleasesConfig
from pilothouse.errors import GateNotMetError, InvalidRequestError
from pilothouse.releases import gates
from pilothouse.releases.registry import PromptRegistry, check_label


async def promote(
    registry: PromptRegistry,
    releases: ReleasesConfig,
    name: str,
    label: str,
    version: int,
    *,
    actor: str,
    reason: str | None,
    force: bool = False,
    extra_evidence: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Move ``label`` to ``version`` if its policy holds (or ``force`` with a reason).

    ``extra_evidence`` (e.g. a rollout's figures) is recorded with the move.
    """
    check_label(label)
    if force and not (reason or "").strip():
        raise InvalidRequestError("a forced promotion needs a `reason`", param="reason")
    target = await registry.version(name, version)
    policy = releases.labels.get(label)
    if policy is not None and "evals" in policy.requires:
        await registry.collect_runs(target)
    missing, evidence = await gates.check(registry, policy, target, label, promoter=actor)
    if missing and not force:
        await audit.append(
            registry.engine,
            actor=actor,
            action="label.refused",
            target=f"{name}/{label}",
            details={
                "version": version,
                "hash": target.hash,
                "reason": reason,
                "missing": missing,
                "evidence": [e.get("run_id") for e in evidence],
            },
        )
        raise GateNotMetError(
            f"{name}@{version} may not take {label!r}: " + "; ".join(missing), missing
        )
    moved = await registry.move_label(
        name,
        label,
        version,
        actor=actor,
        reason=reason,
        forced=force,
        evidence=[
            *evidence,
            *(extra_evidence or []),
            *([{"missing": missing}] if missing else []),
        ],
    )
    return {**moved, "missing": missing}
