"""`pilothouse rag eval` on a slice of the bundled pydoc BEIR set, with the real local embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pilothouse.cli.main import app

pytestmark = pytest.mark.integration

DATA = Path(__file__).parents[3] / "benchmarks" / "data" / "pydoc-beir"
QUERIES = ["pyq005", "pyq016", "pyq029", "pyq037", "pyq101", "pyq164"]


def write_slice(root: Path) -> Path:
    """The six queries, their relevant sections and every tenth short section as distractors."""
    qrels = [
        line.split("\t")
        for line in (DATA / "qrels/test.tsv").read_text().splitlines()[1:]
        if line.split("\t")[0] in QUERIES
    ]
    wanted = {c for _, c, _ in qrels}
    corpus = [json.loads(line) for line in (DATA / "corpus.jsonl").read_text().splitlines()]
    short = [d for d in corpus if len(d["text"].split()) < 120]
    docs = [d for d in corpus if d["_id"] in wanted] + [
        d for d in short[::30] if d["_id"] not in wanted
    ]
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text(
        "".join(
            line + "\n"
            for line in (DATA / "queries.jsonl").read_text().splitlines()
            if json.loads(line)["_id"] in QUERIES
        )
    )
    path = root / "qrels" / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in qrels))
    return path


def test_rag_eval_scores_a_slice_of_the_pydoc_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "pilothouse.yaml"
    cfg.write_text((Path(__file__).parents[3] / "examples/rag/pilothouse.yaml").read_text())
    qrels = write_slice(tmp_path / "pydoc")
    args = ["rag", "eval", "handbook", str(qrels), "--corpus", str(tmp_path / "pydoc/corpus.jsonl")]
    result = CliRunner().invoke(app, [*args, "--json", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    modes = {m["mode"]: m for m in json.loads(result.output)["modes"]}
    assert set(modes) == {"dense", "keyword", "hybrid"}
    for mode in modes.values():
        assert mode["queries"] == len(QUERIES)  # queries.jsonl found beside qrels/, as in BEIR
        assert 0.0 <= mode["ndcg_at_10"]["low"] <= mode["ndcg_at_10"]["high"] <= 1.0
    # a few dozen sections: the labelled answers are in each mode's top ten for most queries
    assert modes["hybrid"]["recall_at_10"]["mean"] >= 0.5, modes["hybrid"]
