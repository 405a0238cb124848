"""Semantic cache benchmark (issue 15): safety and usefulness on the shipped pairs,
hit rate on a replayed FAQ workload against the exact-match cache, lookup latency.

    PYTHONPATH=src python benchmarks/semantic_cache.py [--requests 3000] [--json out.json]

Everything runs in process with the bundled MiniLM (CPU, offline); texts are
embedded once up front so the replay measures the cache, not the embedder
(the embedder's own cost is reported separately, per query).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from pilothouse.cache import gate
from pilothouse.cache.evaluation import Pair, encode_all, evaluate, load_pairs, rate
from pilothouse.cache.response_cache import cache_key
from pilothouse.cache.semantic import SemanticCache, normalise
from pilothouse.cache.vector_index import Entry, MemoryVectorIndex
from pilothouse.providers.minilm import MiniLM

PAIRS = Path(__file__).parents[1] / "examples" / "cache" / "pairs.jsonl"


def messy(text: str) -> str:
    """What users type: another case, doubled spaces, no question mark."""
    return "  " + text.rstrip("?").lower().replace(" ", "  ", 2) + " "


def bank(pairs: list[Pair]) -> list[list[str]]:
    """Intents (distinct questions with distinct answers) and the phrasings users send."""
    intents: dict[str, list[str]] = {}
    for p in pairs:
        if p.should_hit:
            intents.setdefault(p.cached, [p.cached, messy(p.cached)]).append(p.query)
        else:
            intents.setdefault(p.query, [p.query, messy(p.query)])
    for p in pairs:
        intents.setdefault(p.cached, [p.cached, messy(p.cached)])
    return list(intents.values())


def diff_ci(a: int, n_a: int, b: int, n_b: int) -> list[float]:
    """95% Newcombe interval (Wilson-based) for the difference of two proportions."""
    ra, rb = rate(a, n_a)["ci"], rate(b, n_b)["ci"]
    pa, pb = a / n_a, b / n_b
    d = pa - pb
    low = d - ((pa - ra[0]) ** 2 + (rb[1] - pb) ** 2) ** 0.5
    high = d + ((ra[1] - pa) ** 2 + (pb - rb[0]) ** 2) ** 0.5
    return [round(low, 4), round(high, 4)]


async def replay(
    intents: list[list[str]], vectors: dict[str, np.ndarray], n: int, threshold: float, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    ranks = list(range(len(intents)))
    rng.shuffle(ranks)
    weights = [1 / (r + 1) ** 1.1 for r in ranks]  # Zipf, s = 1.1

    async def embed(_alias: str, text: str) -> np.ndarray:
        return vectors[text]

    index = MemoryVectorIndex(100_000)
    sem = SemanticCache(index, embed, entities=gate.entity_finder())
    exact: set[str] = set()
    exact_hits = sem_hits = wrong = 0
    owner: dict[str, int] = {}
    for i in range(n):
        intent = rng.choices(range(len(intents)), weights)[0]
        text = rng.choice(intents[intent])
        key = cache_key("faq", {"messages": [{"role": "user", "content": text}]})
        exact_hits += key in exact
        exact.add(key)
        found = await sem.lookup("p", text, embedder="", threshold=threshold)
        if found.hit is not None:
            sem_hits += 1
            wrong += owner[found.hit.entry.id] != intent
        else:
            entry_id = f"e{i}"
            owner[entry_id] = intent
            entry = Entry(entry_id, normalise(text), text, {}, time.time() + 3600)
            await sem.store(found, "", text, entry)
    return {
        "requests": n,
        "intents": len(intents),
        "zipf_s": 1.1,
        "exact_hit_rate": rate(exact_hits, n),
        "semantic_hit_rate": rate(sem_hits, n),
        "difference": {
            "value": round((sem_hits - exact_hits) / n, 4),
            "ci": diff_ci(sem_hits, n, exact_hits, n),
        },
        "wrong_answers_among_hits": rate(wrong, sem_hits),
    }


def latency(entries: int, partition_size: int, queries: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    index = MemoryVectorIndex(entries)
    vecs = rng.standard_normal((entries, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)

    async def fill() -> None:
        for i in range(entries):
            part = f"p{i // partition_size}"
            await index.add(part, vecs[i], Entry(f"e{i}", f"t{i}", f"t{i}", {}, time.time() + 3600))

    asyncio.run(fill())
    parts = max(entries // partition_size, 1)
    times = []
    for q in range(queries):
        v = vecs[rng.integers(entries)] + 0.05 * rng.standard_normal(384).astype(np.float32)
        v /= np.linalg.norm(v)
        t0 = time.perf_counter()
        index.search(f"p{q % parts}", v, 0.92, 5)
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return {
        "entries": entries,
        "partition_size": partition_size,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
    }


def embed_cost(texts: list[str]) -> dict[str, Any]:
    model = MiniLM(None, 1)
    times = []
    for t in texts:
        t0 = time.perf_counter()
        model.encode([t])
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--threshold", type=float, default=0.92)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    pairs = load_pairs(PAIRS.read_bytes(), str(PAIRS))
    intents = bank(pairs)
    texts = sorted(
        {t for phr in intents for t in phr} | {t for p in pairs for t in (p.cached, p.query)}
    )
    vectors = encode_all([Pair(t, t, t, True, "x") for t in texts])
    out: dict[str, Any] = {"threshold": args.threshold}
    for use_gate in (True, False):
        r = asyncio.run(evaluate(pairs, vectors, threshold=args.threshold, use_gate=use_gate))
        r.pop("mistakes")
        out["pairs_gate" if use_gate else "pairs_no_gate"] = r
    out["faq_replay"] = asyncio.run(
        replay(intents, vectors, args.requests, args.threshold, args.seed)
    )
    out["lookup_latency"] = [
        latency(100_000, 100_000, 500, args.seed),  # one huge scope: the worst case
        latency(100_000, 1_000, 2000, args.seed),  # 100 scopes of 1k (per-key default)
    ]
    out["embed_query"] = embed_cost([p.query for p in pairs[:200]])
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
