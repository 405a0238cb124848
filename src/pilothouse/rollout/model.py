"""A rollout as the gateway sees it, and the deterministic sticky assignment of requests.

Assignment is a hash of the rollout id and the sticky id (user, session, key
or the request itself), mapped to a point in [0, 1): the request goes to the
candidate when that point is below the candidate's share. The point never
changes for a given id, so a user keeps their arm on every replica and across
restarts, and a progressive canary only ever moves users *to* the candidate
as its share grows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pilothouse.rollout.config import RolloutDefaults

Mode = Literal["canary", "ab", "shadow"]
Sticky = Literal["user", "session", "key", "none"]
State = Literal["running", "promoted", "rolled_back", "stopped"]
ARMS = ("baseline", "candidate")
STATES = ("running", "promoted", "rolled_back", "stopped")


def assignment_point(rollout_id: str, sticky_id: str) -> float:
    """A uniform point in [0, 1) from the rollout and sticky ids (SHA-256, first 8 bytes)."""
    digest = hashlib.sha256(f"{rollout_id}\x00{sticky_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def sticky_id(
    sticky: str, metadata: dict[str, Any] | None, key_id: str | None, request_id: str
) -> str:
    """The id a request is assigned by; without one, the request id (no stickiness possible)."""
    if sticky in ("user", "session") and metadata:
        value = metadata.get(sticky)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return f"{sticky}:{value}"
    if sticky == "key" and key_id:
        return f"key:{key_id}"
    return f"request:{request_id}"


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True, slots=True)
class Rollout:
    id: str
    kind: Literal["prompt", "alias"]
    target: str
    mode: Mode
    percent: float
    steps: list[float] | None
    step_after: int | None
    step_index: int
    sticky: Sticky
    bill_shadow: bool
    options: RolloutDefaults
    state: State
    created_at: datetime
    created_by: str
    updated_at: datetime
    prompt_name: str | None = None
    label: str | None = None
    baseline_version: int | None = None
    candidate_version: int | None = None
    alias: str | None = None
    candidate_alias: str | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    end_reason: str | None = None
    verdict: dict[str, Any] | None = None

    @property
    def share(self) -> float:
        """The candidate's share of traffic now (the current step of a progressive canary)."""
        if self.steps:
            return self.steps[min(self.step_index, len(self.steps) - 1)] / 100.0
        return self.percent / 100.0

    def arm_for(self, point: float) -> str:
        return "candidate" if point < self.share else "baseline"

    def candidate_name(self) -> str:
        if self.kind == "prompt":
            return f"{self.prompt_name}@{self.candidate_version}"
        return str(self.candidate_alias)

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "state": self.state,
            "mode": self.mode,
            "target": self.target,
            "percent": self.percent,
            "share": self.share,
            "steps": self.steps,
            "step_after": {"requests": self.step_after} if self.step_after else None,
            "step_index": self.step_index,
            "sticky": self.sticky,
            "bill_shadow": self.bill_shadow,
            "guards": [
                {k: v for k, v in _guard(g).items() if v is not None} for g in self.options.guards
            ],
            "min_samples": self.options.min_samples,
            "alpha": self.options.alpha,
            "on_candidate_error": self.options.on_candidate_error,
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
            "updated_at": _iso(self.updated_at),
            "ended_at": _iso(self.ended_at),
            "ended_by": self.ended_by,
            "end_reason": self.end_reason,
            "verdict": self.verdict,
        }
        if self.kind == "prompt":
            out.update(
                prompt=self.prompt_name,
                label=self.label,
                baseline=self.baseline_version,
                candidate=self.candidate_version,
            )
        else:
            out.update(alias=self.alias, candidate_alias=self.candidate_alias)
        return out


def _guard(g: Any) -> dict[str, Any]:
    return {
        "metric": g.metric,
        "max_increase": g.max_increase,
        "max_increase_ratio": g.max_increase_ratio,
        "max_drop": g.max_drop,
    }


def _iso(value: datetime | None) -> str | None:
    v = _utc(value)
    return v.isoformat() if v is not None else None


def from_row(row: Any) -> Rollout:
    import msgspec

    return Rollout(
        id=row.id,
        kind=row.kind,
        target=row.target,
        mode=row.mode,
        percent=float(row.percent),
        steps=[float(s) for s in row.steps] if row.steps else None,
        step_after=row.step_after,
        step_index=int(row.step_index or 0),
        sticky=row.sticky,
        bill_shadow=bool(row.bill_shadow),
        options=msgspec.convert(row.options, RolloutDefaults),
        state=row.state,
        created_at=_utc(row.created_at) or datetime.now(UTC),
        created_by=row.created_by,
        updated_at=_utc(row.updated_at) or datetime.now(UTC),
        prompt_name=row.prompt_name,
        label=row.label,
        baseline_version=row.baseline_version,
        candidate_version=row.candidate_version,
        alias=row.alias,
        candidate_alias=row.candidate_alias,
        ended_at=_utc(row.ended_at),
        ended_by=row.ended_by,
        end_reason=row.end_reason,
        verdict=row.verdict,
    )
