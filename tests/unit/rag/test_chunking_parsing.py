"""Chunking limits, parsers and reciprocal rank fusion (pure logic)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from pilothouse.config.load import parse_settings
from pilothouse.errors import ConfigError
from pilothouse.rag.chunking import chunk_text
from pilothouse.rag.config import ChunkingConfig
from pilothouse.rag.parsers import parse_file, parse_html, parse_markdown
from pilothouse.rag.service import fuse
from pilothouse.rag.store import Hit


def words(text: str) -> int:
    return len(text.split())


def test_chunks_respect_max_tokens_and_overlap() -> None:
    text = "\n\n".join(
        f"# Section {s}\n\n" + " ".join(f"Sentence {s}.{i} has six words." for i in range(20))
        for s in range(3)
    )
    cfg = ChunkingConfig(max_tokens=50, overlap=10)
    chunks = chunk_text(text, cfg, count=words)
    assert len(chunks) > 3
    assert all(words(c) <= 50 for c in chunks)
    for prev, cur in itertools.pairwise(chunks):
        assert cur.split()[0] in prev.split()[-10:], "each chunk starts with the previous tail"
    joined = " ".join(chunks)
    assert all(f"Sentence {s}.19" in joined for s in range(3)), "nothing is dropped"


def test_small_text_is_one_chunk_and_blank_is_none() -> None:
    cfg = ChunkingConfig(max_tokens=300, overlap=40)
    assert chunk_text("One short paragraph.", cfg, count=words) == ["One short paragraph."]
    assert chunk_text("   \n ", cfg, count=words) == []


def test_markdown_and_html_keep_headings_and_drop_scripts(tmp_path: Path) -> None:
    md = parse_markdown("# Title\n\nSome *styled*\ntext.\n\n## Sub\n\nMore.")
    assert md.title == "Title" and "Some styled text." in md.text and "## Sub" in md.text
    html = parse_html(
        "<html><head><title>Doc</title><style>p{}</style></head><body><nav>menu</nav>"
        "<h2>Part</h2><p>Body text.</p><script>alert(1)</script></body></html>"
    )
    assert html.title == "Doc" and "## Part" in html.text and "Body text." in html.text
    assert "alert" not in html.text and "menu" not in html.text
    (tmp_path / "x.bin").write_bytes(b"\0")
    with pytest.raises(Exception, match="unsupported file type"):
        parse_file(tmp_path / "x.bin")


def test_rrf_prefers_what_both_lists_agree_on() -> None:
    def hit(cid: str) -> Hit:
        return Hit(cid, cid, 0.0, "", None, None, {})

    dense = [hit("a"), hit("b"), hit("c")]
    keyword = [hit("c"), hit("b"), hit("d")]
    assert {h.chunk_id for h in fuse([(dense, 1.0), (keyword, 1.0)])[:2]} == {"b", "c"}
    assert fuse([(dense, 1.0), (keyword, 0.0)])[0].chunk_id == "a"


def test_config_rejects_unknown_embedder_and_bad_keys() -> None:
    base = {
        "providers": {"minilm": {"type": "local_embeddings", "model": "all-minilm-l6-v2"}},
        "models": {
            "embed-local": {"targets": [{"provider": "minilm", "model": "all-minilm-l6-v2"}]}
        },
    }
    with pytest.raises(ConfigError, match=r"rag\.collections\.h\.embedder"):
        parse_settings({**base, "rag": {"collections": {"h": {"embedder": "nope"}}}})
    with pytest.raises(ConfigError, match="max_agee"):
        parse_settings(
            {
                **base,
                "rag": {
                    "collections": {
                        "h": {"embedder": "embed-local", "freshness": {"max_agee": "7d"}}
                    }
                },
            }
        )
    with pytest.raises(ConfigError, match="mode"):
        parse_settings(
            {
                **base,
                "rag": {
                    "collections": {"h": {"embedder": "embed-local", "search": {"mode": "fuzzy"}}}
                },
            }
        )
    with pytest.raises(ConfigError, match="model"):
        parse_settings({"providers": {"m": {"type": "local_embeddings", "model": "bert-xl"}}})
