"""The human review queue: where judges need a second opinion.

After a run, judge verdicts go to the queue when the judge failed to answer
properly, scored right at the pass threshold or was not unanimous across its
samples, when two judges disagree on a case, or by a seeded random draw
(``review.sample_rate``) so the queue also measures the judges' everyday
accuracy. Human labels are exported in the format ``eval calibrate`` reads.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import select, update

from pilothouse.evals.errors import EvalError
from pilothouse.evals.model import Case, RunRecord, Sample, Verdict
from pilothouse.evals.store import EvalStore, new_id, utc
from pilothouse.evals.tables import eval_review

if TYPE_CHECKING:
    from pilothouse.evals.suite import Suite


@dataclass(frozen=True, slots=True)
class ReviewItem:
    id: str
    run_id: str
    case_id: str
    repeat: int
    scorer: str
    reason: str
    status: str
    label: str | None
    note: str | None
    payload: dict[str, Any]
    created_at: datetime | None


def _judges(suite: Suite) -> dict[str, tuple[int, int, int]]:
    """Judge scorer name → (low, high, pass_at)."""
    out = {}
    for scorer in suite.scorers:
        if scorer.config.type == "judge":
            low, high = scorer.config.scale
            out[scorer.name] = (low, high, getattr(scorer, "pass_at", high))
    return out


def select_for_review(record: RunRecord, suite: Suite) -> list[tuple[Sample, Verdict, str]]:
    """(sample, judge verdict, reason) triples, at most one reason per verdict."""
    spec = suite.spec.review
    judges = _judges(suite)
    rng = random.Random(record.info.id)
    chosen = []
    for sample in record.samples:
        verdicts = [v for v in sample.verdicts if v.scorer in judges and v.skipped is None]
        opinions = {v.passed for v in verdicts if v.scored}
        for verdict in verdicts:
            reason = _reason(verdict, judges[verdict.scorer], len(opinions) > 1, spec)
            if reason is None and rng.random() < spec.sample_rate:
                reason = "random"
            if reason is not None:
                chosen.append((sample, verdict, reason))
    return chosen


def _reason(verdict: Verdict, scale: tuple[int, int, int], split: bool, spec: Any) -> str | None:
    if verdict.error is not None:
        return "judge_error" if spec.errors else None
    if split and spec.disagreement:
        return "disagreement"
    if not spec.borderline:
        return None
    if verdict.detail.get("unanimous") is False:
        return "uncertain"
    low, high, pass_at = scale
    # One step either side of the threshold; the ends of the scale are confident answers.
    value = verdict.value
    if value is not None and pass_at - 1 <= value <= pass_at and low < value < high:
        return "borderline"
    return None


def _payload(case: Case, sample: Sample, verdict: Verdict, suite: str) -> dict[str, Any]:
    return {
        "suite": suite,
        "case": msgspec.to_builtins(case),
        "output": sample.output,
        "request_ids": sample.request_ids,
        "verdict": msgspec.to_builtins(verdict),
    }


async def enqueue_review(store: EvalStore, record: RunRecord, suite: Suite) -> int:
    """Queue the run's review candidates (idempotent on resume); returns how many are new."""
    chosen = select_for_review(record, suite)
    if not chosen:
        return 0
    query = select(eval_review.c.case_id, eval_review.c.repeat, eval_review.c.scorer).where(
        eval_review.c.run_id == record.info.id
    )
    now = datetime.now(UTC)
    async with store.engine.begin() as conn:
        existing = {(r.case_id, r.repeat, r.scorer) for r in await conn.execute(query)}
        rows = [
            {
                "id": new_id("rv_"),
                "run_id": record.info.id,
                "case_id": s.case_id,
                "repeat": s.repeat,
                "scorer": v.scorer,
                "reason": reason,
                "status": "pending",
                "payload": _payload(record.cases[s.case_id], s, v, record.info.suite),
                "created_at": now,
            }
            for s, v, reason in chosen
            if (s.case_id, s.repeat, v.scorer) not in existing
        ]
        if rows:
            await conn.execute(eval_review.insert(), rows)
    return len(rows)


def _item(row: Any) -> ReviewItem:
    return ReviewItem(
        row.id,
        row.run_id,
        row.case_id,
        row.repeat,
        row.scorer,
        row.reason,
        row.status,
        row.label,
        row.note,
        dict(row.payload),
        utc(row.created_at),
    )


async def next_item(store: EvalStore, run_id: str | None = None) -> ReviewItem | None:
    """The oldest pending item (of one run, if given)."""
    query = select(eval_review).where(eval_review.c.status == "pending")
    if run_id:
        query = query.where(eval_review.c.run_id == run_id)
    query = query.order_by(eval_review.c.created_at, eval_review.c.id).limit(1)
    async with store.engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return _item(row) if row else None


async def pending_count(store: EvalStore, run_id: str | None = None) -> int:
    query = select(eval_review.c.id).where(eval_review.c.status == "pending")
    if run_id:
        query = query.where(eval_review.c.run_id == run_id)
    async with store.engine.connect() as conn:
        return len((await conn.execute(query)).all())


def normalise_label(label: str, scale: Sequence[int] | None = None) -> str:
    """``pass``/``fail`` (also yes/no, true/false, 1/0 on a binary reading) or a scale score."""
    text = label.strip().lower()
    aliases = {
        "pass": "pass",
        "yes": "pass",
        "true": "pass",
        "fail": "fail",
        "no": "fail",
        "false": "fail",
    }
    if text in aliases:
        return aliases[text]
    if text.lstrip("-").isdigit():
        if scale is not None and not scale[0] <= int(text) <= scale[1]:
            raise EvalError(f"label {label!r} is outside the judge scale {scale[0]}..{scale[1]}")
        return str(int(text))
    raise EvalError(f"label {label!r}: use pass, fail or a score on the judge's scale")


async def label_item(
    store: EvalStore, item_id: str, label: str, note: str | None = None
) -> ReviewItem:
    async with store.engine.begin() as conn:
        row = (await conn.execute(select(eval_review).where(eval_review.c.id == item_id))).first()
        if row is None:
            raise EvalError(f"no review item {item_id!r}")
        verdict = row.payload.get("verdict", {})
        scale = verdict.get("detail", {}).get("scale")
        value = normalise_label(label, scale)
        await conn.execute(
            update(eval_review)
            .where(eval_review.c.id == item_id)
            .values(status="labelled", label=value, note=note, labelled_at=datetime.now(UTC))
        )
        row = (await conn.execute(select(eval_review).where(eval_review.c.id == item_id))).one()
    return _item(row)


async def export_labels(store: EvalStore, run_id: str | None = None) -> list[dict[str, Any]]:
    """Labelled items as calibration rows: id, output, label, scorer (+ provenance)."""
    query = select(eval_review).where(eval_review.c.status == "labelled")
    if run_id:
        query = query.where(eval_review.c.run_id == run_id)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query.order_by(eval_review.c.labelled_at))).all()
    return [
        {
            "id": row.case_id,
            "output": row.payload.get("output"),
            "label": row.label,
            "scorer": row.scorer,
            "run_id": row.run_id,
            "repeat": row.repeat,
            "reason": row.reason,
            **({"note": row.note} if row.note else {}),
        }
        for row in rows
    ]
