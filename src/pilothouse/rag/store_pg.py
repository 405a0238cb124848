"""Scale-out engine: PostgreSQL + pgvector (HNSW, iterative scans) + full-text search.

Dense search runs with ``hnsw.iterative_scan = relaxed_order`` so an ACL
filter (``acl && groups``, inside the same query) keeps scanning until k
readable rows are found instead of returning the few that survived the first
``ef_search`` candidates; when the scan still comes back short, the same query
runs once more as an exact scan (index scans off), so a caller gets k results
whenever k readable chunks exist. Keyword search is ``ts_rank_cd`` over a
stored ``tsvector`` with a GIN index.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import numpy as np

from pilothouse.rag.store import (
    ChunkRecord,
    CollectionState,
    DocumentRecord,
    Hit,
    MetadataFilter,
    Vector,
    keyword_terms,
)

SCHEMA = [
    "CREATE EXTENSION IF NOT EXISTS vector",
    """CREATE TABLE IF NOT EXISTS rag_collections (
      name text PRIMARY KEY, embedder text NOT NULL, embedder_version integer NOT NULL,
      dimensions integer NOT NULL, last_ingest double precision)""",
    """CREATE TABLE IF NOT EXISTS rag_documents (
      collection text NOT NULL, id text NOT NULL, content_hash text NOT NULL, title text,
      source text, acl text[] NOT NULL, metadata jsonb NOT NULL, embedder text NOT NULL,
      embedder_version integer NOT NULL, indexed_at double precision NOT NULL,
      source_mtime double precision, bytes bigint NOT NULL, chunks integer NOT NULL,
      PRIMARY KEY (collection, id))""",
    """CREATE TABLE IF NOT EXISTS rag_chunks (
      id bigserial PRIMARY KEY, collection text NOT NULL, document_id text NOT NULL,
      chunk_id text NOT NULL, ordinal integer NOT NULL, text text NOT NULL,
      acl text[] NOT NULL, embedding vector NOT NULL,
      tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED)""",
    "CREATE INDEX IF NOT EXISTS rag_chunks_doc ON rag_chunks (collection, document_id)",
    "CREATE INDEX IF NOT EXISTS rag_chunks_tsv ON rag_chunks USING gin (tsv)",
    "CREATE INDEX IF NOT EXISTS rag_chunks_acl ON rag_chunks USING gin (acl)",
]


def filter_sql(where: MetadataFilter, args: list[Any]) -> str:
    """``AND``-ed jsonb conditions on ``d.metadata``; appends its parameters to ``args``."""
    parts = []
    for key, values in where.items():
        args.append(key)
        key_at = len(args)
        alts = []
        for v in values:
            args.append(json.dumps(v))
            alts.append(f"${len(args)}::jsonb")
        parts.append(f"(d.metadata -> ${key_at}::text) IN ({', '.join(alts)})")
    return " AND ".join(parts)


def _vec(v: Vector) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(v, dtype=np.float32)) + "]"


class PgRagStore:
    def __init__(self, url: str) -> None:
        self.url = url.replace("postgresql+asyncpg://", "postgresql://")
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._indexed: set[int] = set()

    async def open(self) -> None:
        """Pool and schema; concurrent first callers wait for the schema, not just the pool.

        The pool used to be published before the tables existed, so a second request
        arriving during the first one's CREATE TABLE queried a missing table (a 500).
        """
        if self._pool is not None:
            return
        async with self._opening:
            if self._pool is not None:
                return
            import asyncpg

            pool = await asyncpg.create_pool(self.url, min_size=1, max_size=4)
            try:
                async with pool.acquire() as conn:
                    await conn.execute("SELECT pg_advisory_lock(7212)")
                    try:
                        for stmt in SCHEMA:
                            await conn.execute(stmt)
                    finally:
                        await conn.execute("SELECT pg_advisory_unlock(7212)")
            except BaseException:
                await pool.close()
                raise
            self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _ensure_index(self, conn: Any, dims: int) -> None:
        """One HNSW index per dimension count (``vector`` columns are untyped)."""
        if dims in self._indexed:
            return
        await conn.execute(
            f"CREATE INDEX IF NOT EXISTS rag_chunks_hnsw_{dims} ON rag_chunks USING hnsw "
            f"((embedding::vector({dims})) vector_cosine_ops) WHERE vector_dims(embedding) = {dims}"
        )
        self._indexed.add(dims)

    async def collection(self, name: str) -> CollectionState | None:
        await self.open()
        row = await self._pool.fetchrow(
            "SELECT name, embedder, embedder_version, dimensions, last_ingest "
            "FROM rag_collections WHERE name = $1",
            name,
        )
        return CollectionState(*row) if row else None

    async def set_collection(self, state: CollectionState) -> None:
        await self.open()
        await self._pool.execute(
            "INSERT INTO rag_collections VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE "
            "SET embedder = EXCLUDED.embedder, embedder_version = EXCLUDED.embedder_version, "
            "dimensions = EXCLUDED.dimensions, last_ingest = EXCLUDED.last_ingest",
            state.name,
            state.embedder,
            state.embedder_version,
            state.dimensions,
            state.last_ingest,
        )

    async def document(self, collection: str, doc_id: str) -> DocumentRecord | None:
        docs = await self._docs(collection, doc_id)
        return docs[0] if docs else None

    async def documents(self, collection: str) -> list[DocumentRecord]:
        return await self._docs(collection, None)

    async def _docs(self, collection: str, doc_id: str | None) -> list[DocumentRecord]:
        await self.open()
        sql = (
            "SELECT id, content_hash, title, source, acl, metadata, embedder, embedder_version, "
            "indexed_at, source_mtime, bytes, chunks FROM rag_documents WHERE collection = $1"
        )
        args: list[Any] = [collection]
        if doc_id is not None:
            sql += " AND id = $2"
            args.append(doc_id)
        rows = await self._pool.fetch(sql + " ORDER BY id", *args)
        return [
            DocumentRecord(
                r[0],
                r[1],
                r[2],
                r[3],
                list(r[4]),
                json.loads(r[5]),
                r[6],
                r[7],
                r[8],
                r[9],
                r[10],
                r[11],
            )
            for r in rows
        ]

    async def put(self, collection: str, doc: DocumentRecord, chunks: list[ChunkRecord]) -> None:
        await self.open()
        async with self._pool.acquire() as conn:
            if chunks:
                await self._ensure_index(conn, len(chunks[0].vector))
            async with conn.transaction():
                await conn.execute(
                    "DELETE FROM rag_chunks WHERE collection = $1 AND document_id = $2",
                    collection,
                    doc.id,
                )
                await conn.execute(
                    "INSERT INTO rag_documents VALUES ($1,$2,$3,$4,$5,$6,$7::jsonb,$8,$9,$10,$11,"
                    "$12,$13) ON CONFLICT (collection, id) DO UPDATE SET "
                    "content_hash = EXCLUDED.content_hash, title = EXCLUDED.title, "
                    "source = EXCLUDED.source, acl = EXCLUDED.acl, metadata = EXCLUDED.metadata, "
                    "embedder = EXCLUDED.embedder, embedder_version = EXCLUDED.embedder_version, "
                    "indexed_at = EXCLUDED.indexed_at, source_mtime = EXCLUDED.source_mtime, "
                    "bytes = EXCLUDED.bytes, chunks = EXCLUDED.chunks",
                    collection,
                    doc.id,
                    doc.content_hash,
                    doc.title,
                    doc.source,
                    doc.acl,
                    json.dumps(doc.metadata),
                    doc.embedder,
                    doc.embedder_version,
                    doc.indexed_at,
                    doc.source_mtime,
                    doc.bytes,
                    len(chunks),
                )
                await conn.executemany(
                    "INSERT INTO rag_chunks (collection, document_id, chunk_id, ordinal, text, "
                    "acl, embedding) VALUES ($1, $2, $3, $4, $5, $6, $7::vector)",
                    [
                        (collection, doc.id, c.chunk_id, c.ordinal, c.text, doc.acl, _vec(c.vector))
                        for c in chunks
                    ],
                )
                await conn.execute(
                    "UPDATE rag_collections SET last_ingest = $2 WHERE name = $1",
                    collection,
                    time.time(),
                )

    async def delete(self, collection: str, doc_id: str) -> bool:
        await self.open()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM rag_chunks WHERE collection = $1 AND document_id = $2",
                collection,
                doc_id,
            )
            gone = await conn.execute(
                "DELETE FROM rag_documents WHERE collection = $1 AND id = $2", collection, doc_id
            )
        return bool(gone != "DELETE 0")

    async def dense(
        self,
        collection: str,
        vector: Vector,
        k: int,
        groups: list[str] | None,
        where: MetadataFilter | None = None,
    ) -> list[Hit]:
        await self.open()
        dims = len(vector)
        cond = "c.collection = $2 AND vector_dims(c.embedding) = " + str(dims)
        args: list[Any] = [_vec(vector), collection, k]
        if groups is not None:
            cond += " AND c.acl && $4::text[]"
            args.append(groups)
        if where:
            cond += " AND " + filter_sql(where, args)
        sql = (
            f"SELECT c.document_id, c.chunk_id, 1 - (c.embedding::vector({dims}) <=> "
            f"$1::vector({dims})) AS score, c.text, d.title, d.source, d.metadata "
            "FROM rag_chunks c JOIN rag_documents d ON d.collection = c.collection "
            f"AND d.id = c.document_id WHERE {cond} "
            f"ORDER BY c.embedding::vector({dims}) <=> $1::vector({dims}) LIMIT $3"
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            await conn.execute("SET LOCAL hnsw.ef_search = 100")
            rows = await conn.fetch(sql, *args)
            if len(rows) < k:
                # a selective filter can exhaust even an iterative scan: fall back to exact
                await conn.execute("SET LOCAL enable_indexscan = off")
                rows = await conn.fetch(sql, *args)
        hits = [Hit(r[0], r[1], float(r[2]), r[3], r[4], r[5], json.loads(r[6])) for r in rows]
        hits.sort(key=lambda h: -h.score)
        return hits

    async def keyword(
        self,
        collection: str,
        query: str,
        k: int,
        groups: list[str] | None,
        where: MetadataFilter | None = None,
    ) -> list[Hit]:
        await self.open()
        terms = keyword_terms(query)
        if not terms:
            return []
        cond = "c.collection = $2 AND c.tsv @@ q"
        args: list[Any] = [" ".join(terms), collection, k]
        if groups is not None:
            cond += " AND c.acl && $4::text[]"
            args.append(groups)
        if where:
            cond += " AND " + filter_sql(where, args)
        sql = (
            "WITH query AS (SELECT to_tsquery('english', coalesce(nullif(array_to_string("
            "array(SELECT quote_literal(lexeme) FROM unnest(to_tsvector('english', $1))), ' | '),"
            " ''), 'x_no_terms_x')) AS q) "
            "SELECT c.document_id, c.chunk_id, ts_rank_cd(c.tsv, q) AS score, c.text, d.title, "
            "d.source, d.metadata FROM query, rag_chunks c JOIN rag_documents d ON "
            f"d.collection = c.collection AND d.id = c.document_id WHERE {cond} "
            "ORDER BY score DESC LIMIT $3"
        )
        rows = await self._pool.fetch(sql, *args)
        return [Hit(r[0], r[1], float(r[2]), r[3], r[4], r[5], json.loads(r[6])) for r in rows]

    async def chunks_of(self, collection: str, doc_id: str) -> list[str]:
        await self.open()
        rows = await self._pool.fetch(
            "SELECT text FROM rag_chunks WHERE collection = $1 AND document_id = $2 "
            "ORDER BY ordinal",
            collection,
            doc_id,
        )
        return [r[0] for r in rows]

    async def contains_text(self, collection: str, doc_id: str) -> int:
        await self.open()
        n = await self._pool.fetchval(
            "SELECT count(*) FROM rag_chunks WHERE collection = $1 AND document_id = $2",
            collection,
            doc_id,
        )
        return int(n)

    async def stats(self, collection: str) -> dict[str, Any]:
        await self.open()
        row = await self._pool.fetchrow(
            "SELECT count(*), coalesce(sum(pg_column_size(c.*)), 0), count(*) FILTER (WHERE NOT "
            "EXISTS (SELECT 1 FROM rag_documents d WHERE d.collection = c.collection AND "
            "d.id = c.document_id)) FROM rag_chunks c WHERE c.collection = $1",
            collection,
        )
        return {"chunks": int(row[0]), "index_bytes": int(row[1]), "orphans": int(row[2])}
