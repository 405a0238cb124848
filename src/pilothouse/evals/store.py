"""Persistence for runs, case results and the result cache (SQLite or PostgreSQL).

A case result is committed as soon as it is scored (in small group commits),
which is what makes runs resumable: a crash or Ctrl-C loses at most the cases
that were still in flight.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import delete, desc, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine
from ulid import ULID

from pilothouse.evals.errors import EvalError
from pilothouse.evals.model import Case, RunInfo, RunRecord, Sample
from pilothouse.evals.tables import eval_cache, eval_results, eval_runs

CacheRow = tuple[str, str, dict[str, Any]]  # key, kind, value


def new_id(prefix: str = "") -> str:
    return prefix + str(ULID()).lower()


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _info_json(info: RunInfo) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(info)
    data.pop("summary", None)
    return data


def _baseline_run(info: RunInfo) -> str | None:
    """The indexed column holds baseline *run ids*; file baselines live in the info JSON."""
    ref = info.baseline_id
    return ref if ref and not ref.startswith("file:") and len(ref) <= 40 else None


class EvalStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # -- runs ---------------------------------------------------------------------------

    async def create_run(self, info: RunInfo) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                eval_runs.insert().values(
                    id=info.id,
                    suite=info.suite,
                    suite_hash=info.suite_hash,
                    status=info.status,
                    baseline_id=_baseline_run(info),
                    info=_info_json(info),
                    started_at=info.started_at,
                )
            )

    async def save_run(self, info: RunInfo, gates_passed: bool | None = None) -> None:
        """Store the run's status, end time and summary (after a run or an interruption)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(eval_runs)
                .where(eval_runs.c.id == info.id)
                .values(
                    status=info.status,
                    info=_info_json(info),
                    summary=info.summary or None,
                    gates_passed=gates_passed,
                    baseline_id=_baseline_run(info),
                    finished_at=info.finished_at,
                )
            )

    async def resolve_run_id(self, ref: str) -> str:
        """A full run id, a unique prefix of one, or ``last``."""
        query = select(eval_runs.c.id)
        if ref == "last":
            query = query.order_by(desc(eval_runs.c.started_at)).limit(1)
        else:
            query = query.where(eval_runs.c.id.startswith(ref, autoescape=True)).limit(2)
        async with self.engine.connect() as conn:
            ids = [row.id for row in await conn.execute(query)]
        if not ids:
            raise EvalError(f"no eval run {ref!r} in the store")
        if len(ids) > 1:
            raise EvalError(f"run id prefix {ref!r} is ambiguous; give more characters")
        return str(ids[0])

    async def run_info(self, run_id: str) -> RunInfo:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(eval_runs).where(eval_runs.c.id == run_id))).first()
        if row is None:
            raise EvalError(f"no eval run {run_id!r} in the store")
        return self._info(row)

    @staticmethod
    def _info(row: Any) -> RunInfo:
        data = dict(row.info)
        data.update(status=row.status, summary=row.summary or {})
        info = msgspec.convert(data, RunInfo, strict=False)
        info.started_at = utc(info.started_at)
        info.finished_at = utc(row.finished_at)
        return info

    async def list_runs(self, *, suite: str | None = None, limit: int = 20) -> list[RunInfo]:
        query = select(eval_runs).order_by(desc(eval_runs.c.started_at)).limit(limit)
        if suite:
            query = query.where(eval_runs.c.suite == suite)
        async with self.engine.connect() as conn:
            return [self._info(row) for row in await conn.execute(query)]

    async def load_run(self, run_id: str) -> RunRecord:
        info = await self.run_info(run_id)
        cases: dict[str, Case] = {}
        samples: list[Sample] = []
        query = select(eval_results.c.case, eval_results.c.sample).where(
            eval_results.c.run_id == run_id
        )
        async with self.engine.connect() as conn:
            for row in await conn.execute(query):
                case = msgspec.convert(row.case, Case, strict=False)
                cases.setdefault(case.id, case)
                samples.append(msgspec.convert(row.sample, Sample, strict=False))
        position = {case_id: i for i, case_id in enumerate(info.case_order)}
        ordered = sorted(cases, key=lambda c: (position.get(c, len(position)), c))
        samples.sort(key=lambda s: (position.get(s.case_id, len(position)), s.case_id, s.repeat))
        return RunRecord(info=info, cases={c: cases[c] for c in ordered}, samples=samples)

    async def finished_samples(self, run_id: str) -> set[tuple[str, int]]:
        """(case, repeat) pairs that completed without a target error."""
        query = select(eval_results.c.case_id, eval_results.c.repeat).where(
            eval_results.c.run_id == run_id, eval_results.c.error.is_(None)
        )
        async with self.engine.connect() as conn:
            return {(row.case_id, row.repeat) for row in await conn.execute(query)}

    # -- results ------------------------------------------------------------------------

    async def write(
        self, run_id: str, items: Sequence[tuple[Case, Sample]], cache_rows: Sequence[CacheRow]
    ) -> None:
        """Write results (replacing a retried case's earlier error) and cache rows atomically."""
        now = datetime.now(UTC)
        rows = [
            {
                "id": new_id(),
                "run_id": run_id,
                "case_id": case.id,
                "repeat": sample.repeat,
                "error": sample.error,
                "cost_pico": sample.cost_pico,
                "case": msgspec.to_builtins(case),
                "sample": msgspec.to_builtins(sample),
                "created_at": now,
            }
            for case, sample in items
        ]
        keys = [(case.id, sample.repeat) for case, sample in items]
        async with self.engine.begin() as conn:
            for start in range(0, len(keys), 500):  # a retried case replaces its error row
                chunk = keys[start : start + 500]
                await conn.execute(
                    delete(eval_results).where(
                        eval_results.c.run_id == run_id,
                        tuple_(eval_results.c.case_id, eval_results.c.repeat).in_(chunk),
                    )
                )
            if rows:
                await conn.execute(eval_results.insert(), rows)
            await self._put_cache(conn, cache_rows, now)

    # -- cache --------------------------------------------------------------------------

    @staticmethod
    async def _put_cache(conn: Any, cache_rows: Sequence[CacheRow], now: datetime) -> None:
        unique = {key: (kind, value) for key, kind, value in cache_rows}
        if not unique:
            return
        await conn.execute(delete(eval_cache).where(eval_cache.c.key.in_(list(unique))))
        await conn.execute(
            eval_cache.insert(),
            [
                {"key": k, "kind": kind, "value": v, "created_at": now}
                for k, (kind, v) in unique.items()
            ],
        )

    async def cache_get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        async with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = select(eval_cache.c.key, eval_cache.c.value).where(
                    eval_cache.c.key.in_(chunk)
                )
                for row in await conn.execute(query):
                    found[row.key] = dict(row.value)
        return found

    async def cache_get(self, key: str) -> dict[str, Any] | None:
        return (await self.cache_get_many([key])).get(key)
