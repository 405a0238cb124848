"""Retrieval metrics against hand-computed values; BEIR qrels parsing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pilothouse.errors import InvalidRequestError
from pilothouse.rag.evaluation import load_qrels, mrr, ndcg_at, recall_at, summarize


def test_metrics_match_hand_computed_values() -> None:
    ranked = ["d3", "d1", "d9", "d2"]
    relevant = {"d1": 1, "d2": 2}
    assert recall_at(ranked, relevant, 2) == 0.5
    assert recall_at(ranked, relevant, 10) == 1.0
    assert mrr(ranked, relevant, 10) == 0.5
    dcg = 1 / math.log2(3) + 3 / math.log2(5)
    idcg = 3 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at(ranked, relevant) == pytest.approx(dcg / idcg)
    assert ndcg_at(["d2", "d1"], relevant) == pytest.approx(1.0)
    assert ndcg_at(["x"], relevant) == 0.0


def test_summary_has_bootstrap_intervals() -> None:
    per_query = [{"ndcg_at_10": v, "mrr": v} for v in (0.0, 0.5, 1.0, 1.0)]
    out = summarize(per_query, "hybrid")
    assert out["queries"] == 4
    assert (
        out["ndcg_at_10"]["low"] <= out["ndcg_at_10"]["mean"] == 0.625 <= out["ndcg_at_10"]["high"]
    )


def test_qrels_jsonl_and_tsv(tmp_path: Path) -> None:
    jl = tmp_path / "qrels.jsonl"
    jl.write_text(
        '{"query-id": "q1", "corpus-id": "d1", "score": 1}\n'
        '{"query-id": "q1", "corpus-id": "d2", "score": 0}\n'
    )
    assert load_qrels(jl) == {"q1": {"d1": 1}}
    tsv = tmp_path / "test.tsv"
    tsv.write_text("query-id\tcorpus-id\tscore\nq2\td5\t2\n")
    assert load_qrels(tsv) == {"q2": {"d5": 2}}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query-id": "q1"}\n')
    with pytest.raises(InvalidRequestError, match="corpus-id"):
        load_qrels(bad)
