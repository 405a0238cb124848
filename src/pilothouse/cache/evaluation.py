"""``pilothouse cache eval``: precision and hit rate of a semantic cache configuration.

Each labelled pair is a cached question and a later query; ``should_hit``
says whether the cached answer is right for the query (a paraphrase) or not
(a hard negative: negation, reversed relation, swapped entity, number or
unit). Every pair gets its own partition, so pairs never see each other.
Rates carry Wilson 95% intervals.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from pilothouse.cache import gate
from pilothouse.cache.semantic import SemanticCache
from pilothouse.cache.vector_index import Entry, MemoryVectorIndex
from pilothouse.errors import InvalidRequestError
from pilothouse.routing.train import wilson


@dataclass(frozen=True, slots=True)
class Pair:
    id: str
    cached: str
    query: str
    should_hit: bool
    kind: str


def load_pairs(raw: bytes, source: str) -> list[Pair]:
    pairs = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
            pairs.append(
                Pair(
                    str(row.get("id", n)),
                    str(row["cached"]),
                    str(row["query"]),
                    bool(row["should_hit"]),
                    str(row.get("kind", "paraphrase" if row["should_hit"] else "negative")),
                )
            )
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise InvalidRequestError(
                f"{source}:{n}: expected an object with cached, query, should_hit ({exc})"
            ) from None
    if not pairs:
        raise InvalidRequestError(f"{source}: no pairs")
    return pairs


def rate(k: int, n: int) -> dict[str, Any]:
    low, high = wilson(k, n)
    return {"value": k / n if n else None, "ci": [round(low, 4), round(high, 4)], "k": k, "n": n}


async def evaluate(
    pairs: Sequence[Pair],
    vectors: dict[str, np.ndarray],
    *,
    threshold: float,
    use_gate: bool = True,
    verifier: gate.Verifier | None = None,
) -> dict[str, Any]:
    """Precision on hits, hit rate and false hits per kind; ``vectors``: text -> unit vector."""

    async def embed(_alias: str, text: str) -> np.ndarray:
        return vectors[text]

    index = MemoryVectorIndex(len(pairs) + 1)
    cache = SemanticCache(index, embed, entities=gate.entity_finder())
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    mistakes = []
    for p in pairs:
        entry = Entry(p.id, p.cached.lower(), p.cached, {}, time.time() + 3600)
        await index.add(p.id, vectors[p.cached], entry)
        if use_gate:
            found = await cache.lookup(
                p.id, p.query, embedder="", threshold=threshold, verifier=verifier
            )
            hit = found.hit is not None
        else:
            hit = bool(await index.nearest(p.id, vectors[p.query], threshold, 1))
        totals[p.kind] += 1
        hits[p.kind] += hit
        if hit != p.should_hit:
            mistakes.append({"id": p.id, "kind": p.kind, "cached": p.cached, "query": p.query})
    good = sum(hits[p] for p in {q.kind for q in pairs if q.should_hit})
    positives = sum(totals[k] for k in {q.kind for q in pairs if q.should_hit})
    all_hits = sum(hits.values())
    return {
        "pairs": len(pairs),
        "threshold": threshold,
        "gate": use_gate,
        "precision": rate(good, all_hits),
        "hit_rate": rate(good, positives),
        "false_hits_by_kind": {
            k: rate(hits[k], totals[k])
            for k in sorted(totals)
            if not any(q.should_hit for q in pairs if q.kind == k)
        },
        "mistakes": mistakes,
    }


def encode_all(pairs: Sequence[Pair], threads: int | None = None) -> dict[str, np.ndarray]:
    """Embed every distinct text once with the bundled MiniLM (CPU, offline)."""
    from pilothouse.providers.minilm import MiniLM

    texts = sorted({t for p in pairs for t in (p.cached, p.query)})
    matrix, _ = MiniLM(None, threads).encode(texts)
    return {t: matrix[i] for i, t in enumerate(texts)}
