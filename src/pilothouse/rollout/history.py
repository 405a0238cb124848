"""Each guard's statistic against its boundary over time, shared by replicas.

Guards are evaluated every ``rollouts.evaluate_interval_s`` (0.25 s) on every
replica; keeping each evaluation would be millions of rows a week. One row per
guard per ``rollouts.history_interval_s`` bucket is kept instead, the latest
evaluation in the bucket winning (an upsert), so replicas write one series and
the evaluation that breached a guard overwrites its bucket and is always shown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.rollout.guards import Verdict
from pilothouse.rollout.tables import rollout_guard_history as history


class GuardHistory:
    def __init__(self, engine: AsyncEngine, interval_s: float) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self._written: dict[str, int] = {}  # rollout id → last bucket this replica wrote

    def due(self, rollout_id: str, now: float, *, force: bool = False) -> int | None:
        """The bucket to write now, or None when this replica already wrote it."""
        bucket = int(now // self.interval_s)
        if not force and self._written.get(rollout_id) == bucket:
            return None
        self._written[rollout_id] = bucket
        return bucket

    async def record(
        self, rollout_id: str, verdicts: Sequence[Verdict], now: float, *, force: bool = False
    ) -> bool:
        """Write the verdicts' point for ``now``'s bucket (``force``: even if written)."""
        bucket = self.due(rollout_id, now, force=force)
        if bucket is None or not verdicts:
            return False
        at = datetime.fromtimestamp(now, UTC)
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(history)
        stmt = stmt.on_conflict_do_update(
            index_elements=["rollout_id", "metric", "bucket"],
            set_={c: stmt.excluded[c] for c in ("at", "state", "samples", "statistic", "boundary")},
        )
        async with self.engine.begin() as conn:
            for v in verdicts:  # one statement per row: ON CONFLICT in executemany differs
                comparison = v.comparison
                await conn.execute(
                    stmt,
                    {
                        "rollout_id": rollout_id,
                        "metric": v.metric,
                        "bucket": bucket,
                        "at": at,
                        "state": v.state,
                        "samples": v.samples,
                        "statistic": _finite(comparison.statistic) if comparison else None,
                        "boundary": _finite(comparison.boundary) if comparison else None,
                    },
                )
        return True

    async def series(self, rollout_id: str) -> dict[str, list[dict[str, Any]]]:
        """Per guard metric, its points in time order."""
        out: dict[str, list[dict[str, Any]]] = {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(history)
                .where(history.c.rollout_id == rollout_id)
                .order_by(history.c.metric, history.c.bucket)
            )
            for r in rows:
                at = r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC)  # SQLite drops the zone
                out.setdefault(r.metric, []).append(
                    {
                        "at": at.isoformat(timespec="seconds"),
                        "state": r.state,
                        "samples": r.samples,
                        "statistic": r.statistic,
                        "boundary": r.boundary,
                    }
                )
        return out


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
