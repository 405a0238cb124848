"""``GET /admin/rollouts/{id}``: both arms' figures, guard verdicts, SRM, outcomes.

Feedback and cost per successful task are read from the store (usage rows
carry the rollout id and arm; feedback joins on the request id), so they
count feedback that arrives on any replica, at any time after the answer.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.limits.money import pico_to_usd
from pilothouse.rollout import arms, guards, sequential
from pilothouse.rollout.model import Rollout
from pilothouse.rollout.shared import Totals
from pilothouse.store.tables import feedback, usage_records


async def feedback_by_arm(engine: AsyncEngine, rollout_id: str) -> dict[str, dict[str, float]]:
    """Per arm: feedback count, successes, and the cost of the requests that succeeded."""
    success = case((feedback.c.success.is_(True), 1), else_=0)
    query = (
        select(
            usage_records.c.rollout_arm,
            func.count(feedback.c.id),
            func.coalesce(func.sum(success), 0),
            func.coalesce(
                func.sum(case((feedback.c.success.is_(True), usage_records.c.cost_pico), else_=0)),
                0,
            ),
        )
        .select_from(
            usage_records.join(feedback, feedback.c.request_id == usage_records.c.request_id)
        )
        .where(usage_records.c.rollout_id == rollout_id, feedback.c.success.is_not(None))
        .group_by(usage_records.c.rollout_arm)
    )
    cost_all = (
        select(usage_records.c.rollout_arm, func.coalesce(func.sum(usage_records.c.cost_pico), 0))
        .where(usage_records.c.rollout_id == rollout_id)
        .group_by(usage_records.c.rollout_arm)
    )
    out: dict[str, dict[str, float]] = {}
    async with engine.connect() as conn:
        for arm, total, wins, _won_cost in await conn.execute(query):
            out.setdefault(str(arm), {}).update(n=float(total), success=float(wins))
        for arm, spent in await conn.execute(cost_all):
            out.setdefault(str(arm), {})["cost_pico"] = float(spent)
    return out


def srm(ro: Rollout, totals: Totals) -> dict[str, Any]:
    """Assignment share vs target: chi-square p-value (small = assignment is broken)."""
    cand = int(totals.get("candidate", {}).get("n", 0.0))
    base = int(totals.get("baseline", {}).get("n", 0.0))
    share = ro.share
    if ro.mode == "shadow":  # every request is a baseline one; a share of them also shadowed
        share = share / (1.0 + share)
    if ro.steps:
        return {"checked": False, "reason": "the share changes between steps", "target": share}
    p_value = sequential.srm_p_value((cand, base), share)
    observed = cand / (cand + base) if cand + base else None
    return {
        "checked": p_value is not None,
        "target": round(share, 6),
        "observed": round(observed, 6) if observed is not None else None,
        "p_value": p_value,
        "mismatch": p_value is not None and p_value < 0.001,
    }


def _per_success(
    figures: dict[str, Any], got: dict[str, float], wins: float, lo: Any, hi: Any
) -> dict[str, Any]:
    """Spend on the arm's requests per successful task; the interval combines the cost
    per request and success rate intervals (conservative: both ends at once)."""
    if not wins:
        return {"value": None, "ci": [None, None]}
    value = float(pico_to_usd(int(got.get("cost_pico", 0.0) / wins)))
    coverage = got.get("n", 0.0) / max(figures["requests"], 1)  # requests with feedback
    c_lo, c_hi = figures["cost_per_request_usd"]["ci"]
    s_lo = float(lo) * coverage if lo is not None else None  # successes per request served
    s_hi = float(hi) * coverage if hi is not None else None
    ci = [
        round(max(c_lo, 0.0) / s_hi, 9) if c_lo is not None and s_hi else None,
        round(c_hi / s_lo, 9) if c_hi is not None and s_lo else None,
    ]
    return {"value": round(value, 9), "ci": ci}


def build(
    ro: Rollout,
    totals: Totals,
    marks: dict[str, Any],
    fb: dict[str, dict[str, float]],
) -> dict[str, Any]:
    alpha, n_opt = ro.options.alpha, float(ro.options.min_samples)
    arm_figures: dict[str, Any] = {}
    outcomes: dict[str, dict[str, tuple[float, float]]] = {"feedback_success_rate": {}}
    for arm in ("baseline", "candidate"):
        figures = arms.summary(totals.get(arm, {}), alpha, n_opt)
        got = fb.get(arm, {})
        n_fb, wins = got.get("n", 0.0), got.get("success", 0.0)
        lo, hi = sequential.proportion_cs(wins, n_fb, alpha) if n_fb else (None, None)
        figures["feedback"] = {
            "n": int(n_fb),
            "success_rate": {
                "value": round(wins / n_fb, 6) if n_fb else None,
                "ci": [lo, hi],
            },
            "cost_per_successful_task_usd": _per_success(figures, got, wins, lo, hi),
        }
        outcomes["feedback_success_rate"][arm] = (wins, n_fb)
        for scorer, score in figures["online_eval"].items():
            sums = totals.get(arm, {})
            outcomes.setdefault(f"online_eval.{scorer}", {})[arm] = (
                min(sums.get(f"ev.{scorer}.sum", 0.0), score["n"]),
                float(score["n"]),
            )
        arm_figures[arm] = figures
    verdicts = guards.evaluate(ro, totals, marks)  # after the end too: the last figures
    out = {
        **ro.public(),
        "arms": arm_figures,
        "guards": [v.public() for v in verdicts],
        "srm": srm(ro, totals),
        "recommendation": guards.recommendation(ro, totals, outcomes),
    }
    return out
