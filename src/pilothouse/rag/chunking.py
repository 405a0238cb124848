"""Recursive chunking: headings, then paragraphs, then sentences, then words.

A text is split at the coarsest boundary that makes every piece fit
``max_tokens``; neighbouring pieces are then packed back together up to the
limit, and each chunk after the first starts with the last ``overlap`` tokens
of the previous one so a sentence cut at a boundary is still findable.
Tokens are counted with the embedder's own tokenizer when it is installed
(so a chunk never exceeds what the model reads), otherwise by words.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from functools import lru_cache

from pilothouse.rag.config import ChunkingConfig

Counter = Callable[[str], int]

_SPLITTERS: list[re.Pattern[str]] = [
    re.compile(r"\n(?=#{1,6} )"),  # Markdown headings
    re.compile(r"\n\s*\n"),  # paragraphs
    re.compile(r"(?<=[.!?])\s+"),  # sentences
    re.compile(r"\s+"),  # words
]


@lru_cache(maxsize=1)
def default_counter() -> Counter:
    try:
        from tokenizers import Tokenizer

        from pilothouse.providers.minilm import model_dir

        tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
    except Exception:
        return lambda text: len(text.split())

    def count(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False).ids)

    return count


def chunk_text(text: str, config: ChunkingConfig, count: Counter | None = None) -> list[str]:
    """Chunks of ``text`` of at most ``config.max_tokens`` tokens (plus overlap)."""
    count = count or default_counter()
    text = text.strip()
    if not text:
        return []
    budget = config.max_tokens - config.overlap if config.overlap else config.max_tokens
    pieces = _split(text, budget, count, 0)
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        n = count(piece)
        if current and size + n > budget:
            chunks.append(" ".join(current).strip())
            current, size = [], 0
        current.append(piece)
        size += n
    if current:
        chunks.append(" ".join(current).strip())
    if config.overlap and len(chunks) > 1:
        chunks = [chunks[0]] + [
            _tail(prev, config.overlap, count) + " " + cur
            for prev, cur in itertools.pairwise(chunks)
        ]
    return [c for c in chunks if c]


def _split(text: str, budget: int, count: Counter, level: int) -> list[str]:
    if level >= len(_SPLITTERS) or count(text) <= budget:
        return [text]
    out: list[str] = []
    for part in _SPLITTERS[level].split(text):
        part = part.strip()
        if part:
            out.extend(_split(part, budget, count, level + 1))
    return out


def _tail(text: str, tokens: int, count: Counter) -> str:
    """At most the last ``tokens`` tokens of ``text``, cut at a word boundary."""
    words = text.split()
    keep = min(len(words), max(1, int(tokens / 1.3)))
    while keep > 1 and count(" ".join(words[-keep:])) > tokens:
        keep -= 1
    return " ".join(words[-keep:])
