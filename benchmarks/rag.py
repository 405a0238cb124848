"""RAG benchmarks: embedding throughput and search latency on the embedded engine.

    python benchmarks/rag.py --chunks 10000 [--embed 32]

Prints JSON. Ingestion: chunks/s of ~200-word chunks through the bundled
all-MiniLM-L6-v2 runtime. Search: p50/p95 of dense, keyword and hybrid over
``--chunks`` synthetic chunks (random unit vectors, vocabulary text), without
and with a 1%-selective ACL filter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from pilothouse.rag.service import fuse
from pilothouse.rag.store import ChunkRecord, CollectionState, DocumentRecord
from pilothouse.rag.store_sqlite import SqliteRagStore

WORDS = [
    "gateway",
    "routing",
    "budget",
    "cost",
    "trace",
    "latency",
    "retrieval",
    "index",
    "chunk",
    "vector",
    "keyword",
    "breaker",
    "fallback",
    "provider",
    "token",
    "cache",
    "prompt",
    "release",
    "guard",
    "policy",
    "alias",
    "tenant",
    "ledger",
    "metric",
    "alert",
    "freshness",
    "document",
    "permission",
    "group",
    "embed",
    "search",
    "hybrid",
]


def embed_throughput(n: int) -> dict[str, float]:
    from pilothouse.providers.minilm import MiniLM

    rng = random.Random(1)
    texts = [" ".join(rng.choice(WORDS) for _ in range(200)) for _ in range(n)]
    model = MiniLM()
    model.encode(texts[:2])
    started = time.perf_counter()
    model.encode(texts)
    return {"chunks": n, "chunks_per_s": n / (time.perf_counter() - started)}


async def search_latency(n: int, queries: int = 50) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteRagStore(str(Path(tmp) / "bench.db"))
        await store.set_collection(CollectionState("bench", "x", 1, 384, None))
        per_doc = 10
        for d in range(n // per_doc):
            vectors = rng.standard_normal((per_doc, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            chunks = [
                ChunkRecord(
                    f"{d}#{i}", i, " ".join(random.choice(WORDS) for _ in range(40)), vectors[i]
                )
                for i in range(per_doc)
            ]
            acl = ["narrow"] if d % 100 == 0 else ["wide"]
            await store.put("bench", DocumentRecord(str(d), "h", acl=acl), chunks)
        out: dict[str, dict[str, float]] = {}
        for label, groups in (("unfiltered", None), ("filtered_1pct", ["narrow"])):
            for mode in ("dense", "keyword", "hybrid"):
                times = []
                for _ in range(queries):
                    q = rng.standard_normal(384).astype(np.float32)
                    q /= np.linalg.norm(q)
                    text = " ".join(random.choice(WORDS) for _ in range(4))
                    t = time.perf_counter()
                    if mode in ("dense", "hybrid"):
                        dense = await store.dense("bench", q, 40, groups)
                    if mode in ("keyword", "hybrid"):
                        kw = await store.keyword("bench", text, 40, groups)
                    if mode == "hybrid":
                        fuse([(dense, 1.0), (kw, 1.0)])
                    times.append((time.perf_counter() - t) * 1000)
                times.sort()
                out[f"{mode}_{label}"] = {
                    "p50_ms": statistics.median(times),
                    "p95_ms": times[int(len(times) * 0.95) - 1],
                }
        await store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=10000)
    parser.add_argument("--embed", type=int, default=32)
    args = parser.parse_args()
    result = {
        "ingest": embed_throughput(args.embed) if args.embed else None,
        "search_sqlite": {str(args.chunks): asyncio.run(search_latency(args.chunks))},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
