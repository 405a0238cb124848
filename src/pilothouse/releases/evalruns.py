"""What the eval store says about a prompt version's runs: which run compared with what.

A run counts for a version when its target was ``prompt:NAME@V`` (a number:
immutable, so exactly that hash). Its baseline is the run it was compared
with; the baseline's own target says which version that was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import desc, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.evals.tables import eval_runs


def matching_suite(path: str, suites: list[str]) -> str | None:
    """The bundle's suite entry a run's suite path is (same file, or same relative tail)."""
    if not path:
        return None
    for suite in suites:
        if path == suite or path.endswith("/" + suite.lstrip("./")):
            return suite
        with contextlib.suppress(OSError):
            if Path(path).resolve() == Path(suite).resolve():
                return suite
    return None


def target_of(name: str, version: int) -> str:
    return f"prompt:{name}@{version}"


def _model(info: Any) -> str | None:
    target = (info or {}).get("target") or {}
    model = target.get("model") if isinstance(target, dict) else None
    return model if isinstance(model, str) else None


async def baselines(engine: AsyncEngine, run_ids: Sequence[str]) -> dict[str, str | None]:
    """For each stored run: the target model of the run it was compared with (or None)."""
    if not run_ids:
        return {}
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(eval_runs.c.id, eval_runs.c.baseline_id).where(
                    eval_runs.c.id.in_(list(run_ids))
                )
            )
        ).all()
        base_ids = [r.baseline_id for r in rows if r.baseline_id]
        targets: dict[str, str | None] = {}
        if base_ids:
            for row in await conn.execute(
                select(eval_runs.c.id, eval_runs.c.info).where(eval_runs.c.id.in_(base_ids))
            ):
                targets[row.id] = _model(row.info)
    return {r.id: targets.get(r.baseline_id) if r.baseline_id else None for r in rows}


async def latest_completed(engine: AsyncEngine, name: str, version: int, suite: str) -> str | None:
    """The newest completed run of ``suite`` against ``prompt:NAME@VERSION`` (a baseline)."""
    wanted = target_of(name, version)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(eval_runs.c.id, eval_runs.c.info)
            .where(eval_runs.c.status == "completed")
            .order_by(desc(eval_runs.c.started_at))
        )
        for row in rows:
            info = row.info or {}
            path = str(info.get("suite_path") or "")
            if _model(info) == wanted and matching_suite(path, [suite]):
                return str(row.id)
    return None


def uses_baseline(gates: Any) -> bool:
    """Whether a run's stored gate results include a comparison with a baseline."""
    if not isinstance(gates, list):
        return False
    return any(isinstance(g, dict) and (g.get("gate") or {}).get("vs") == "baseline" for g in gates)


def failed_gates(gates: Any) -> list[str]:
    if not isinstance(gates, list):
        return []
    return [
        f"{g.get('name')}: {g.get('detail')}"
        for g in gates
        if isinstance(g, dict) and g.get("status") in ("fail", "error")
    ]
