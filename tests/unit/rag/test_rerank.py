"""Reranker plugins: the baseline reorders by query-word overlap; unknown names fail at load."""

from __future__ import annotations

import pytest

from pilothouse.config.load import parse_settings
from pilothouse.errors import ConfigError
from pilothouse.rag import rerank
from pilothouse.rag.store import Hit

EMBED = {
    "providers": {"minilm": {"type": "local_embeddings", "model": "all-minilm-l6-v2"}},
    "models": {"embed-local": {"targets": [{"provider": "minilm", "model": "all-minilm-l6-v2"}]}},
}


def hit(doc: str, text: str, score: float) -> Hit:
    return Hit(doc, doc + "#0", score, text, None, None, {})


def test_keyword_overlap_puts_chunks_with_more_query_words_first() -> None:
    hits = [
        hit("a", "budgets are set per key", 0.9),
        hit("b", "the daily budget cap per key is refused with 429", 0.5),
        hit("c", "daily cap on spend per key", 0.4),
        hit("d", "nothing relevant", 0.3),
    ]
    out = rerank.get("keyword-overlap").rerank("daily cap per key", hits)
    assert [h.document_id for h in out] == ["b", "c", "a", "d"]
    assert [h.score for h in out] == [1.0, 1.0, 0.5, 0.0]  # b before c: ties keep fused order


def test_an_unknown_reranker_fails_at_load_with_its_path() -> None:
    coll = {"embedder": "embed-local", "search": {"rerank": "cross-encoder-xl"}}
    with pytest.raises(ConfigError, match=r"rag\.collections\.handbook\.search\.rerank"):
        parse_settings({**EMBED, "rag": {"collections": {"handbook": coll}}}, source="<t>")
    coll["search"] = {"rerank": True}
    settings = parse_settings({**EMBED, "rag": {"collections": {"handbook": coll}}}, source="<t>")
    assert rerank.resolve(settings.rag.collections["handbook"].search.rerank) == "keyword-overlap"


def test_a_registered_reranker_is_selectable_by_name() -> None:
    class Reverse:
        def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
            return hits[::-1]

    rerank.register("reverse-test", Reverse)
    try:
        _select_reverse()
    finally:
        rerank._REGISTRY.pop("reverse-test")


def _select_reverse() -> None:
    coll = {"embedder": "embed-local", "search": {"rerank": "reverse-test"}}
    parse_settings({**EMBED, "rag": {"collections": {"handbook": coll}}}, source="<t>")
    assert [
        h.document_id
        for h in rerank.get("reverse-test").rerank("q", [hit("a", "", 1), hit("b", "", 0)])
    ] == ["b", "a"]
