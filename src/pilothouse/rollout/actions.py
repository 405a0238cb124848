"""Start, read, promote and roll back rollouts: one implementation for the API and the CLI.

The gateway passes its running parts; the CLI builds the same from the
config (a manager that is never started, the registry on the store, Redis
for the change messages), so both write the same rows and audit entries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from pilothouse.config.schema import ReleasesConfig
from pilothouse.errors import ConflictError, InvalidRequestError, NotFoundError
from pilothouse.releases.promote import promote as promote_label
from pilothouse.releases.registry import PromptRegistry
from pilothouse.rollout import report
from pilothouse.rollout.config import RolloutDefaults
from pilothouse.rollout.manager import RolloutManager
from pilothouse.rollout.model import Rollout
from pilothouse.rollout.store import parse_request


async def _nothing() -> None:
    return None


@dataclass
class Parts:
    manager: RolloutManager
    registry: PromptRegistry
    defaults: RolloutDefaults
    releases: ReleasesConfig
    aliases: Collection[str]
    label_moved: Callable[[str, str], Awaitable[None]]
    flush_ledger: Callable[[], Awaitable[None]] = _nothing


async def _check_targets(parts: Parts, values: dict[str, Any]) -> None:
    if values["kind"] == "prompt":
        name, label = values["prompt_name"], values["label"]
        baseline = await parts.registry.label_version(name, label)
        if baseline is None:
            raise InvalidRequestError(f"prompt {name!r} has no label {label!r}", param="label")
        try:
            await parts.registry.version(name, values["candidate_version"])
        except NotFoundError as exc:
            raise InvalidRequestError(exc.message, param="candidate") from None
        if baseline == values["candidate_version"]:
            raise InvalidRequestError(
                f"{label!r} already points at version {baseline}", param="candidate"
            )
        values["baseline_version"] = baseline
        return
    for field in ("alias", "candidate_alias"):
        if values[field] not in parts.aliases:
            raise InvalidRequestError(
                f"`{field}` {values[field]!r} is not a model alias in the config", param=field
            )


async def start(parts: Parts, body: dict[str, Any], *, actor: str, reason: str | None) -> Rollout:
    values = parse_request(body, parts.defaults)
    await _check_targets(parts, values)
    ro = await parts.manager.store.create(values, actor=actor, reason=reason)
    await parts.manager.changed()
    return ro


async def status(parts: Parts, ro: Rollout) -> dict[str, Any]:
    """Figures of both arms, guard verdicts, SRM and recommendation, from shared counters."""
    await parts.manager.flush()
    totals = await parts.manager.totals(ro.id)
    marks = await parts.manager.store.marks(ro.id)
    await parts.flush_ledger()
    fb = await report.feedback_by_arm(parts.manager.store.engine, ro.id)
    return report.build(ro, totals, marks, fb)


def _not_running(ro: Rollout) -> ConflictError:
    return ConflictError(f"rollout {ro.id} is {ro.state}, not running", code="rollout_not_running")


async def promote(
    parts: Parts, rollout_id: str, *, actor: str, reason: str | None, force: bool = False
) -> dict[str, Any]:
    """Prompt rollouts move the label through its release policy, with the rollout as evidence."""
    store = parts.manager.store
    ro = await store.get(rollout_id)
    if ro.state != "running":
        raise _not_running(ro)
    figures = await status(parts, ro)
    evidence = {
        "rollout_id": ro.id,
        "mode": ro.mode,
        "requests": {arm: figures["arms"][arm]["requests"] for arm in ("baseline", "candidate")},
        "guards": {g["metric"]: g["state"] for g in figures["guards"]},
        "srm_p_value": figures["srm"].get("p_value"),
    }
    moved: dict[str, Any] | None = None
    if ro.kind == "prompt":
        assert ro.prompt_name and ro.label and ro.candidate_version is not None
        moved = await promote_label(
            parts.registry,
            parts.releases,
            ro.prompt_name,
            ro.label,
            ro.candidate_version,
            actor=actor,
            reason=reason or f"rollout {ro.id}",
            force=force,
            extra_evidence=[evidence],
        )
        await parts.label_moved(ro.prompt_name, ro.label)
    if not await store.end(
        ro.id, "promoted", actor=actor, reason=reason, audit_details={"evidence": evidence}
    ):
        raise _not_running(await store.get(ro.id))
    await parts.manager.changed()
    return {**(await store.get(ro.id)).public(), "label_move": moved}


async def rollback(
    parts: Parts, rollout_id: str, *, actor: str, reason: str | None
) -> dict[str, Any]:
    store = parts.manager.store
    ro = await store.get(rollout_id)
    if not await store.end(ro.id, "rolled_back", actor=actor, reason=reason or "manual rollback"):
        raise _not_running(await store.get(ro.id))
    await parts.manager.changed()
    return (await store.get(ro.id)).public()
