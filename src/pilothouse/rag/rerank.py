"""Rerankers: plugins registered by name that reorder a search's candidates.

``search: {rerank: NAME}`` (``true`` means the baseline) reranks the fused
candidate list before it is cut to k. A reranker sees only chunks the caller
may read (ACLs and filters were applied inside the index query), so it can
reorder but never widen what is returned. Register more with :func:`register`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from pilothouse.rag.store import Hit

_WORD = re.compile(r"[a-z0-9]+")


class Reranker(Protocol):
    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]: ...


class KeywordOverlap:
    """Baseline: share of the query's distinct words found in the chunk; ties keep fused order."""

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        words = set(_WORD.findall(query.lower()))
        if not words:
            return hits
        scored = [
            (len(words & set(_WORD.findall(h.text.lower()))) / len(words), -i, h)
            for i, h in enumerate(hits)
        ]
        scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
        return [replace(h, score=s) for s, _, h in scored]


_REGISTRY: dict[str, Callable[[], Reranker]] = {"keyword-overlap": KeywordOverlap}
DEFAULT = "keyword-overlap"


def register(name: str, factory: Callable[[], Reranker]) -> None:
    _REGISTRY[name] = factory


def names() -> list[str]:
    return sorted(_REGISTRY)


def resolve(setting: bool | str) -> str | None:
    """The reranker name a ``search.rerank`` setting selects (None: no reranking)."""
    if setting is False:
        return None
    return DEFAULT if setting is True else setting


def get(name: str) -> Reranker:
    return _REGISTRY[name]()
