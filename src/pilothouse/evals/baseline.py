"""Baselines: a stored run (id, unique prefix or ``last``) or a JSON report file."""

from __future__ import annotations

from pathlib import Path

from pilothouse.evals.model import RunRecord
from pilothouse.evals.reports.json_report import load_run_json
from pilothouse.evals.store import EvalStore


def looks_like_file(ref: str) -> bool:
    return ref.endswith(".json") or "/" in ref or Path(ref).is_file()


async def load_baseline(ref: str, store: EvalStore | None) -> tuple[RunRecord, str]:
    """The baseline run and how to refer to it (run id, or ``file:PATH``)."""
    if looks_like_file(ref):
        path = Path(ref)
        return load_run_json(path), f"file:{path}"
    if store is None:
        from pilothouse.evals.errors import EvalError

        raise EvalError(f"baseline {ref!r} is a run id, but no store is configured")
    record = await store.load_run(await store.resolve_run_id(ref))
    return record, record.info.id
