"""Rollouts in the store: create (one running per target), read, and state transitions.

Every transition is a compare-and-set on ``state = 'running'`` committed with
its audit row, so when several replicas see the same breach at once exactly
one of them rolls back (and only that one alerts).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from ulid import ULID

from pilothouse import audit
from pilothouse.errors import ConflictError, InvalidRequestError, NotFoundError
from pilothouse.rollout.config import OPTION_KEYS, RolloutDefaults, merge_options
from pilothouse.rollout.model import Rollout, from_row
from pilothouse.rollout.tables import rollout_marks, rollouts

_KEYS = {
    "prompt",
    "label",
    "candidate",
    "alias",
    "candidate_alias",
    "mode",
    "percent",
    "split",
    "steps",
    "step_after",
    "sticky",
    "bill_shadow",
    "reason",
    *OPTION_KEYS,
}


def _bad(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _percent(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
        raise _bad(param, f"`{param}` must be a number in (0, 100]")
    return float(value)


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise _bad(name, f"`{name}` must be a non-empty string")
    return value


def parse_request(body: dict[str, Any], defaults: RolloutDefaults) -> dict[str, Any]:
    """Validate a ``POST /admin/rollouts`` body into table values (without ids and times)."""
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        raise _bad(unknown[0], f"unknown field `{unknown[0]}`")
    mode = body.get("mode", "canary")
    if mode not in ("canary", "ab", "shadow"):
        raise _bad("mode", "`mode` must be canary, ab or shadow")
    values: dict[str, Any] = {"mode": mode}
    if "prompt" in body:
        if "alias" in body or "candidate_alias" in body:
            raise _bad("alias", "give either prompt/label/candidate or alias/candidate_alias")
        name, label = _text(body, "prompt"), _text(body, "label")
        candidate = body.get("candidate")
        if isinstance(candidate, bool) or not isinstance(candidate, int) or candidate < 1:
            raise _bad("candidate", "`candidate` must be a prompt version number")
        values.update(
            kind="prompt",
            target=f"prompt:{name}@{label}",
            prompt_name=name,
            label=label,
            candidate_version=candidate,
        )
    elif "alias" in body:
        alias, cand = _text(body, "alias"), _text(body, "candidate_alias")
        if alias == cand:
            raise _bad("candidate_alias", "`candidate_alias` must differ from `alias`")
        values.update(kind="alias", target=alias, alias=alias, candidate_alias=cand)
    else:
        raise _bad("prompt", "give `prompt`, `label`, `candidate` or `alias`, `candidate_alias`")
    default_share = {"canary": 10.0, "ab": 50.0, "shadow": 100.0}[mode]
    share_key = "split" if mode == "ab" and "split" in body else "percent"
    values["percent"] = _percent(body.get(share_key, default_share), share_key)
    steps = body.get("steps")
    step_after = body.get("step_after")
    if steps is not None:
        if mode != "canary":
            raise _bad("steps", "`steps` apply to canary rollouts")
        if not isinstance(steps, list) or not steps or len(steps) > 20:
            raise _bad("steps", "`steps` must be a list of 1 to 20 percentages")
        parsed = [_percent(s, "steps") for s in steps]
        if parsed != sorted(parsed):
            raise _bad("steps", "`steps` must not decrease")
        requests = step_after.get("requests") if isinstance(step_after, dict) else None
        if isinstance(requests, bool) or not isinstance(requests, int) or requests < 1:
            raise _bad("step_after", "`steps` need `step_after: {requests: N}` with N >= 1")
        values.update(steps=parsed, step_after=requests, percent=parsed[0])
    elif step_after is not None:
        raise _bad("step_after", "`step_after` needs `steps`")
    sticky = body.get("sticky", "none")
    if sticky not in ("user", "session", "key", "none"):
        raise _bad("sticky", "`sticky` must be user, session, key or none")
    bill = body.get("bill_shadow", False)
    if not isinstance(bill, bool):
        raise _bad("bill_shadow", "`bill_shadow` must be true or false")
    if bill and mode != "shadow":
        raise _bad("bill_shadow", "`bill_shadow` applies to shadow rollouts")
    try:
        options = merge_options(defaults, body)
    except msgspec.ValidationError as exc:
        param = next((k for k in OPTION_KEYS if k in str(exc)), "guards")
        raise _bad(param, f"invalid rollout option: {exc}") from None
    values.update(sticky=sticky, bill_shadow=bill, options=msgspec.to_builtins(options))
    return values


class RolloutStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, values: dict[str, Any], *, actor: str, reason: str | None) -> Rollout:
        now = datetime.now(UTC)
        row = {
            **values,
            "id": "ro_" + str(ULID()).lower(),
            "running_target": values["target"],
            "state": "running",
            "step_index": 0,
            "created_at": now,
            "created_by": actor,
            "updated_at": now,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(rollouts.insert().values(**row))
                await audit.append(
                    conn,
                    actor=actor,
                    action="rollout.start",
                    target=row["id"],
                    details={
                        "target": row["target"],
                        "mode": row["mode"],
                        "percent": row["percent"],
                        "candidate": row.get("candidate_version") or row.get("candidate_alias"),
                        "baseline": row.get("baseline_version") or row.get("alias"),
                        "reason": reason,
                    },
                )
        except IntegrityError:
            running = await self.running_for(values["target"])
            raise ConflictError(
                f"a rollout is already running on {values['target']}"
                + (f" ({running.id}); promote or roll it back first" if running else ""),
                param="target",
                code="rollout_running",
            ) from None
        return from_row(_Row(row))

    async def running_for(self, target: str) -> Rollout | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(rollouts).where(rollouts.c.running_target == target))
            ).first()
        return from_row(row) if row is not None else None

    async def get(self, rollout_id: str) -> Rollout:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(rollouts).where(rollouts.c.id == rollout_id))).first()
        if row is None:
            raise NotFoundError(f"no rollout {rollout_id!r}")
        return from_row(row)

    async def list_rollouts(self, state: str | None = None, limit: int = 100) -> list[Rollout]:
        query = select(rollouts).order_by(rollouts.c.id.desc()).limit(limit)
        if state is not None:
            query = query.where(rollouts.c.state == state)
        async with self.engine.connect() as conn:
            return [from_row(r) for r in await conn.execute(query)]

    async def active(self) -> list[Rollout]:
        """Rollouts that change routing: per target its latest rollout, if running or a
        promoted alias rollout (a later rollout on the same target supersedes a promotion)."""
        latest = select(func.max(rollouts.c.id)).group_by(rollouts.c.target)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(rollouts).where(rollouts.c.id.in_(latest.scalar_subquery()))
            )
            found = [from_row(r) for r in rows]
        return [
            ro
            for ro in found
            if ro.state == "running" or (ro.state == "promoted" and ro.kind == "alias")
        ]

    async def changed_since(self, since: datetime) -> tuple[bool, datetime]:
        now = datetime.now(UTC)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(rollouts.c.id).where(rollouts.c.updated_at >= since).limit(1)
                )
            ).first()
        return row is not None, now

    async def end(
        self,
        rollout_id: str,
        state: str,
        *,
        actor: str,
        reason: str | None,
        verdict: dict[str, Any] | None = None,
        audit_details: dict[str, Any] | None = None,
    ) -> bool:
        """Move a running rollout to ``state``; False when it no longer runs (someone won)."""
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(rollouts)
                .where(rollouts.c.id == rollout_id, rollouts.c.state == "running")
                .values(
                    state=state,
                    running_target=None,
                    updated_at=now,
                    ended_at=now,
                    ended_by=actor,
                    end_reason=(reason or "")[:2000] or None,
                    verdict=verdict,
                )
            )
            if done.rowcount != 1:
                return False
            action = {"rolled_back": "rollout.rollback", "promoted": "rollout.promote"}.get(
                state, "rollout.stop"
            )
            await audit.append(
                conn,
                actor=actor,
                action=action,
                target=rollout_id,
                details={"reason": reason, **(audit_details or {})},
            )
        return True

    async def advance_step(self, rollout_id: str, step_index: int, *, share: float) -> bool:
        """Move a progressive canary from ``step_index`` to the next step (once)."""
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(rollouts)
                .where(
                    rollouts.c.id == rollout_id,
                    rollouts.c.state == "running",
                    rollouts.c.step_index == step_index,
                )
                .values(step_index=step_index + 1, updated_at=now)
            )
            if done.rowcount != 1:
                return False
            await audit.append(
                conn,
                actor="rollout-controller",
                action="rollout.step",
                target=rollout_id,
                details={"step_index": step_index + 1, "percent": share},
            )
        return True

    async def mark_once(self, rollout_id: str, name: str, value: Any) -> Any:
        """Set ``name`` for the rollout unless set; returns the value that holds (first wins)."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    rollout_marks.insert().values(rollout_id=rollout_id, name=name, value=value)
                )
            return value
        except IntegrityError:
            return (await self.marks(rollout_id)).get(name, value)

    async def marks(self, rollout_id: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(rollout_marks).where(rollout_marks.c.rollout_id == rollout_id)
            )
            return {r.name: r.value for r in rows}


class _Row:
    """A dict seen as a row (attribute access), for :func:`from_row` after an insert."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update({c.name: None for c in rollouts.c}, **values)
