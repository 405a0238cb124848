"""Retrieval evaluation, separate from generation: recall@k, MRR and nDCG@10 per mode.

Input is BEIR's format, so real BEIR sets drop in: ``corpus.jsonl``
(``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``) and qrels
as JSONL (``query-id``, ``corpus-id``, ``score``) or BEIR's TSV with that
header. Each metric gets a bootstrap confidence interval from the one
statistics module (:mod:`pilothouse.evals.stats`).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from pilothouse.errors import InvalidRequestError
from pilothouse.evals.stats import bootstrap_ci, seed_for

Qrels = dict[str, dict[str, int]]


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidRequestError(f"{path}:{n}: not JSON ({exc.msg})") from None
    return rows


def load_qrels(path: Path) -> Qrels:
    qrels: Qrels = defaultdict(dict)
    if path.suffix == ".tsv":
        lines = path.read_text().splitlines()[1:]
        rows: list[dict[str, Any]] = []
        for line in lines:
            q, c, s = line.split("\t")[:3]
            rows.append({"query-id": q, "corpus-id": c, "score": s})
    else:
        rows = load_jsonl(path)
    for i, row in enumerate(rows):
        try:
            q, c = str(row["query-id"]), str(row["corpus-id"])
            grade = int(row.get("score", 1))
        except (KeyError, TypeError, ValueError):
            raise InvalidRequestError(
                f"{path}: row {i + 1} needs query-id, corpus-id and an integer score"
            ) from None
        if grade > 0:
            qrels[q][c] = grade
    return dict(qrels)


def load_queries(path: Path) -> dict[str, str]:
    return {str(r["_id"]): str(r["text"]) for r in load_jsonl(path)}


def recall_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def mrr(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    for i, doc in enumerate(ranked[:k], start=1):
        if doc in relevant:
            return 1.0 / i
    return 0.0


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(
        (2 ** relevant.get(doc, 0) - 1) / math.log2(i + 1)
        for i, doc in enumerate(ranked[:k], start=1)
    )
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 1) for i, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg else 0.0


def dedupe(doc_ids: list[str]) -> list[str]:
    """Chunk hits → document ranking (first occurrence wins)."""
    seen: set[str] = set()
    out = []
    for d in doc_ids:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def case_metrics(ranked: list[str], relevant: dict[str, int], k: int) -> dict[str, float]:
    return {
        f"recall_at_{k}": recall_at(ranked, relevant, k),
        "mrr": mrr(ranked, relevant, k),
        "ndcg_at_10": ndcg_at(ranked, relevant, 10),
    }


def summarize(per_query: list[dict[str, float]], mode: str, seed: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": mode, "queries": len(per_query)}
    if not per_query:
        return out
    for name in per_query[0]:
        ci = bootstrap_ci([m[name] for m in per_query], seed=seed_for(mode, name, base=seed))
        out[name] = {"mean": ci.mean, "low": ci.low, "high": ci.high}
    return out
