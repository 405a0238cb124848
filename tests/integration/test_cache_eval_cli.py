"""``pilothouse cache eval`` on the shipped pairs, with the real MiniLM embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pilothouse.cli.main import app

pytestmark = pytest.mark.integration
PAIRS = Path(__file__).parents[2] / "examples" / "cache" / "pairs.jsonl"


def test_shipped_pairs_are_enough_and_cover_every_hard_negative() -> None:
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    assert len(rows) >= 300
    kinds = {r["kind"] for r in rows}
    assert {"paraphrase", "negation", "reversed", "entity", "number", "unit"} <= kinds
    assert len({(r["cached"], r["query"]) for r in rows}) == len(rows)


def test_gate_keeps_precision_where_similarity_alone_does_not() -> None:
    gated = CliRunner().invoke(app, ["cache", "eval", str(PAIRS), "--threshold", "0.92", "--json"])
    assert gated.exit_code == 0, gated.output
    report = json.loads(gated.output)
    assert report["precision"]["value"] >= 0.99 and report["hit_rate"]["value"] > 0.5
    assert report["false_hits_by_kind"]["negation"]["k"] == 0
    bare = CliRunner().invoke(
        app, ["cache", "eval", str(PAIRS), "--threshold", "0.92", "--no-gate", "--json"]
    )
    assert json.loads(bare.output)["precision"]["value"] < 0.9  # negations score > 0.92 too
    table = CliRunner().invoke(app, ["cache", "eval", str(PAIRS)])
    assert "precision on hits" in table.output and "[" in table.output


def test_bad_pairs_file_is_a_precise_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"cached": "a"}\n')
    result = CliRunner().invoke(app, ["cache", "eval", str(bad)])
    assert result.exit_code != 0 and "bad.jsonl:1" in result.output
