"""`pilothouse rag eval` on a BEIR-format set, and the `retrieval` scorer on both engines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pilothouse.cli.main import app
from pilothouse.evals.model import Case
from pilothouse.evals.scorers.base import ScoreContext, build_scorer
from pilothouse.rag.service import IncomingDocument, RagService

pytestmark = pytest.mark.integration

CORPUS = {
    "breakers": "A circuit breaker opens after repeated upstream failures and sheds traffic.",
    "budgets": "Budgets cap the money a virtual key may spend each day.",
    "cache": "The response cache answers identical requests without calling the model.",
    "otlp": "Traces are exported to an OpenTelemetry collector over OTLP/HTTP.",
}
QUERIES = {
    "q1": ("which part stops sending traffic to a failing upstream", "breakers"),
    "q2": ("limit how much money a key spends", "budgets"),
    "q3": ("export traces to opentelemetry", "otlp"),
}


def write_beir(root: Path) -> Path:
    root.mkdir()
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": k, "text": v}) + "\n" for k, v in CORPUS.items())
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, (t, _) in QUERIES.items())
    )
    qrels = root / "qrels.jsonl"
    qrels.write_text(
        "".join(
            json.dumps({"query-id": q, "corpus-id": d, "score": 1}) + "\n"
            for q, (_, d) in QUERIES.items()
        )
    )
    return qrels


async def test_retrieval_scorer_reports_ndcg_recall_and_mrr(
    service: RagService, tmp_path: Path
) -> None:
    await service.ingest(
        "handbook", [IncomingDocument(k, v, acl=["staff"]) for k, v in CORPUS.items()]
    )
    scorer = build_scorer({"type": "retrieval", "collection": "handbook", "k": 3}, tmp_path, "s")
    scorer.service = service  # type: ignore[attr-defined]
    good = await scorer.evaluate(
        Case(id="1", input=QUERIES["q2"][0], expected=["budgets"]), "", ScoreContext()
    )
    assert good.passed and good.value == pytest.approx(1.0)
    assert good.detail["metrics"] == {"recall_at_3": 1.0, "mrr": 1.0, "ndcg_at_10": 1.0}
    wrong = await scorer.evaluate(
        Case(id="2", input=QUERIES["q2"][0], expected=["nothing"]), "", ScoreContext()
    )
    assert not wrong.passed and wrong.value == 0.0
    skipped = await scorer.evaluate(Case(id="3", input="x"), "", ScoreContext())
    assert skipped.skipped


def test_rag_eval_reports_every_mode_with_intervals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "pilothouse.yaml"
    cfg.write_text((Path(__file__).parents[3] / "examples/rag/pilothouse.yaml").read_text())
    qrels = write_beir(tmp_path / "beir")
    result = CliRunner().invoke(
        app,
        [
            "rag",
            "eval",
            "handbook",
            str(qrels),
            "--corpus",
            str(tmp_path / "beir/corpus.jsonl"),
            "--json",
            "--config",
            str(cfg),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [m["mode"] for m in report["modes"]] == ["dense", "keyword", "hybrid"]
    for mode in report["modes"]:
        assert mode["queries"] == 3
        ci = mode["ndcg_at_10"]
        assert 0.0 <= ci["low"] <= ci["mean"] <= ci["high"] <= 1.0
        assert set(mode) >= {"recall_at_10", "mrr"}
    dense = report["modes"][0]
    assert dense["recall_at_10"]["mean"] == 1.0  # 4 documents: each answer is in the top 10


async def test_grounded_checks_the_answer_against_the_chunks_retrieved_for_the_case(
    service: RagService, tmp_path: Path
) -> None:
    await service.ingest(
        "handbook",
        [
            IncomingDocument("pto", "Staff get 25 days of paid leave a year.", acl=["staff"]),
            IncomingDocument("exec", "Executives get unlimited paid leave.", acl=["exec"]),
            *(IncomingDocument(k, v, acl=["staff"]) for k, v in CORPUS.items()),
        ],
    )
    raw = {"type": "grounded", "retrieval": {"collection": "handbook", "k": 2, "groups": ["staff"]}}
    scorer = build_scorer(raw, tmp_path, "s")
    scorer.search.service = service  # type: ignore[attr-defined]
    case = Case(id="1", input="how many days of paid leave do staff get")
    good = await scorer.evaluate(case, "Staff get 25 days of paid leave a year.", ScoreContext())
    assert good.passed and good.detail["retrieved"][0] == "pto"
    invented = await scorer.evaluate(case, "Staff get 30 days of paid leave.", ScoreContext())
    assert not invented.passed and invented.detail["unsupported"]
    # True in the index, but not in what this caller's search could retrieve: unsupported.
    hidden = await scorer.evaluate(case, "Executives get unlimited leave.", ScoreContext())
    assert not hidden.passed and "exec" not in hidden.detail["retrieved"]
    # A case's own context still counts alongside the retrieved chunks.
    given = Case(id="2", input=case.input, context="Executives get unlimited paid leave.")
    both = await scorer.evaluate(given, "Executives get unlimited leave.", ScoreContext())
    assert both.passed
