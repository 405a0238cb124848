"""Embedded engine: SQLite (FTS5 BM25 for keywords) + an in-process NumPy vector index.

This Python cannot load SQLite extensions, so vectors live as float32 BLOBs
and are searched by one matrix product over the collection (≈7 ms for 100k x
384 here). The matrix is cached per collection and reloaded when the
collection's generation counter (bumped by every write, from any process)
moves. The ACL filter is a mask applied *before* the top-k selection and a
``WHERE`` clause inside the FTS query, so a caller gets k readable chunks
whenever k exist.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS rag_collections (
  name TEXT PRIMARY KEY, embedder TEXT NOT NULL, embedder_version INTEGER NOT NULL,
  dimensions INTEGER NOT NULL, last_ingest REAL, generation INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS rag_documents (
  collection TEXT NOT NULL, id TEXT NOT NULL, content_hash TEXT NOT NULL, title TEXT,
  source TEXT, acl TEXT NOT NULL, metadata TEXT NOT NULL, embedder TEXT NOT NULL,
  embedder_version INTEGER NOT NULL, indexed_at REAL NOT NULL, source_mtime REAL,
  bytes INTEGER NOT NULL, chunks INTEGER NOT NULL, PRIMARY KEY (collection, id));
CREATE TABLE IF NOT EXISTS rag_chunks (
  id INTEGER PRIMARY KEY, collection TEXT NOT NULL, document_id TEXT NOT NULL,
  chunk_id TEXT NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL, acl TEXT NOT NULL,
  embedding BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS rag_chunks_doc ON rag_chunks (collection, document_id);
CREATE VIRTUAL TABLE IF NOT EXISTS rag_fts USING fts5(text, tokenize = 'porter unicode61');
"""


def acl_text(groups: list[str]) -> str:
    return "|" + "|".join(groups) + "|" if groups else ""


def filter_sql(where: MetadataFilter, column: str = "d.metadata") -> tuple[str, list[Any]]:
    """``AND``-ed conditions on a JSON metadata column; JSON types must match exactly."""
    parts: list[str] = []
    args: list[Any] = []
    for key, values in where.items():
        path = f'$."{key}"'
        alts = []
        for v in values:
            if isinstance(v, bool):
                alts.append(f"json_type({column}, ?) = ?")
                args += [path, "true" if v else "false"]
            elif isinstance(v, int | float):
                alts.append(
                    f"(json_type({column}, ?) IN ('integer', 'real') "
                    f"AND json_extract({column}, ?) = ?)"
                )
                args += [path, path, v]
            else:
                alts.append(f"(json_type({column}, ?) = 'text' AND json_extract({column}, ?) = ?)")
                args += [path, path, v]
        parts.append("(" + " OR ".join(alts) + ")")
    return " AND ".join(parts), args


@dataclass(slots=True)
class _Matrix:
    generation: int
    ids: np.ndarray
    docs: np.ndarray
    vectors: np.ndarray
    acl: list[frozenset[str]]
    # readable-rows mask per caller group set, built once per generation: a Python pass
    # over 100k ACL sets cost more than the matrix product itself
    masks: dict[frozenset[str], np.ndarray] = field(default_factory=dict)

    def readable(self, groups: list[str]) -> np.ndarray:
        key = frozenset(groups)
        mask = self.masks.get(key)
        if mask is None:
            if len(self.masks) >= 256:
                self.masks.clear()
            mask = np.fromiter((not a.isdisjoint(key) for a in self.acl), bool, len(self.acl))
            self.masks[key] = mask
        return mask


class SqliteRagStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._matrices: dict[str, _Matrix] = {}

    async def open(self) -> None:
        if self._conn is not None:
            return
        if self.path not in ("", ":memory:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

        def connect() -> sqlite3.Connection:
            # Wait for other writers (several `pilothouse worker` processes share the file)
            # from the very first statement: switching to WAL needs a lock too.
            conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            return conn

        self._conn = await asyncio.to_thread(connect)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        await self.open()
        conn = self._conn
        assert conn is not None

        def call() -> T:
            with self._lock:
                return fn(conn)

        return await asyncio.to_thread(call)

    async def collection(self, name: str) -> CollectionState | None:
        def q(c: sqlite3.Connection) -> CollectionState | None:
            row = c.execute(
                "SELECT name, embedder, embedder_version, dimensions, last_ingest "
                "FROM rag_collections WHERE name = ?",
                (name,),
            ).fetchone()
            return CollectionState(*row) if row else None

        return await self._run(q)

    async def set_collection(self, state: CollectionState) -> None:
        def q(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO rag_collections (name, embedder, embedder_version, dimensions, "
                "last_ingest) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "embedder = excluded.embedder, embedder_version = excluded.embedder_version, "
                "dimensions = excluded.dimensions, last_ingest = excluded.last_ingest, "
                "generation = generation + 1",
                (
                    state.name,
                    state.embedder,
                    state.embedder_version,
                    state.dimensions,
                    state.last_ingest,
                ),
            )

        await self._run(q)

    async def document(self, collection: str, doc_id: str) -> DocumentRecord | None:
        docs = await self._docs(collection, doc_id)
        return docs[0] if docs else None

    async def documents(self, collection: str) -> list[DocumentRecord]:
        return await self._docs(collection, None)

    async def _docs(self, collection: str, doc_id: str | None) -> list[DocumentRecord]:
        def q(c: sqlite3.Connection) -> list[DocumentRecord]:
            sql = (
                "SELECT id, content_hash, title, source, acl, metadata, embedder, "
                "embedder_version, indexed_at, source_mtime, bytes, chunks FROM rag_documents "
                "WHERE collection = ?"
            )
            args: tuple[Any, ...] = (collection,)
            if doc_id is not None:
                sql += " AND id = ?"
                args += (doc_id,)
            out = []
            for r in c.execute(sql + " ORDER BY id", args):
                out.append(
                    DocumentRecord(
                        r[0],
                        r[1],
                        r[2],
                        r[3],
                        json.loads(r[4]),
                        json.loads(r[5]),
                        r[6],
                        r[7],
                        r[8],
                        r[9],
                        r[10],
                        r[11],
                    )
                )
            return out

        return await self._run(q)

    async def put(self, collection: str, doc: DocumentRecord, chunks: list[ChunkRecord]) -> None:
        acl = acl_text(doc.acl)

        def q(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                _delete_chunks(c, collection, doc.id)
                c.execute(
                    "INSERT OR REPLACE INTO rag_documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        collection,
                        doc.id,
                        doc.content_hash,
                        doc.title,
                        doc.source,
                        json.dumps(doc.acl),
                        json.dumps(doc.metadata),
                        doc.embedder,
                        doc.embedder_version,
                        doc.indexed_at,
                        doc.source_mtime,
                        doc.bytes,
                        len(chunks),
                    ),
                )
                for ch in chunks:
                    cur = c.execute(
                        "INSERT INTO rag_chunks (collection, document_id, chunk_id, ordinal, text, "
                        "acl, embedding) VALUES (?,?,?,?,?,?,?)",
                        (
                            collection,
                            doc.id,
                            ch.chunk_id,
                            ch.ordinal,
                            ch.text,
                            acl,
                            np.asarray(ch.vector, dtype="<f4").tobytes(),
                        ),
                    )
                    c.execute(
                        "INSERT INTO rag_fts (rowid, text) VALUES (?, ?)", (cur.lastrowid, ch.text)
                    )
                _bump(c, collection)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        await self._run(q)

    async def delete(self, collection: str, doc_id: str) -> bool:
        def q(c: sqlite3.Connection) -> bool:
            c.execute("BEGIN IMMEDIATE")
            try:
                _delete_chunks(c, collection, doc_id)
                gone = c.execute(
                    "DELETE FROM rag_documents WHERE collection = ? AND id = ?",
                    (collection, doc_id),
                ).rowcount
                _bump(c, collection)
                c.execute("COMMIT")
                return bool(gone)
            except BaseException:
                c.execute("ROLLBACK")
                raise

        return await self._run(q)

    async def _matrix(self, collection: str) -> _Matrix:
        def q(c: sqlite3.Connection) -> _Matrix:
            row = c.execute(
                "SELECT generation, dimensions FROM rag_collections WHERE name = ?", (collection,)
            ).fetchone()
            gen, dims = (row[0], row[1]) if row else (-1, 0)
            cached = self._matrices.get(collection)
            if cached is not None and cached.generation == gen:
                return cached
            rows = c.execute(
                "SELECT id, acl, embedding, document_id FROM rag_chunks WHERE collection = ?",
                (collection,),
            ).fetchall()
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            docs = np.array([r[3] for r in rows], dtype=object)
            vectors = (
                np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), -1)
                if rows
                else np.zeros((0, dims or 1), dtype=np.float32)
            )
            acl = [frozenset(g for g in r[1].split("|") if g) for r in rows]
            m = _Matrix(gen, ids, docs, vectors, acl)
            self._matrices[collection] = m
            return m

        return await self._run(q)

    async def dense(
        self,
        collection: str,
        vector: Vector,
        k: int,
        groups: list[str] | None,
        where: MetadataFilter | None = None,
    ) -> list[Hit]:
        m = await self._matrix(collection)
        if not len(m.ids):
            return []
        scores = m.vectors @ np.asarray(vector, dtype=np.float32)
        mask: np.ndarray | None = None
        if groups is not None:
            mask = m.readable(groups)
        if where:
            matching = await self._matching_documents(collection, where)
            meta_mask = np.isin(m.docs, np.array(sorted(matching), dtype=object))
            mask = meta_mask if mask is None else mask & meta_mask
        if mask is not None:
            # masked before the top-k selection: k readable, matching chunks when k exist
            scores = np.where(mask, scores, -np.inf)
            readable = int(mask.sum())
        else:
            readable = len(scores)
        take = min(k, readable)
        if take <= 0:
            return []
        top = np.argpartition(-scores, take - 1)[:take]
        top = top[np.argsort(-scores[top])]
        return await self._hits([int(m.ids[i]) for i in top], [float(scores[i]) for i in top])

    async def _matching_documents(self, collection: str, where: MetadataFilter) -> set[str]:
        cond, args = filter_sql(where, "metadata")
        rows = await self._run(
            lambda c: c.execute(
                f"SELECT id FROM rag_documents WHERE collection = ? AND {cond}",
                [collection, *args],
            ).fetchall()
        )
        return {r[0] for r in rows}

    async def keyword(
        self,
        collection: str,
        query: str,
        k: int,
        groups: list[str] | None,
        where: MetadataFilter | None = None,
    ) -> list[Hit]:
        """Exact BM25 top-k of the chunks the caller may read.

        Two phases because BM25 plus the join and ACL test for every matching chunk cost
        hundreds of ms at 100k chunks: first FTS5 alone (no join) takes the best
        ``candidates(k)`` matches (``ORDER BY bm25(...)`` measured faster than the ``rank``
        column here), then one lookup keeps the readable ones in
        rank order. Any readable chunk outside those candidates ranks below all of them,
        so when k pass (or phase 1 returned every match) that is exactly the top-k; only
        otherwise — a narrow filter — does the full filtered query run, so k readable
        chunks still come back whenever k exist.
        """
        terms = keyword_terms(query)
        if not terms or (groups is not None and not groups):
            return []
        match = " OR ".join(f'"{t}"' for t in terms)
        conds, args = _chunk_conditions(collection, groups, where)
        n = candidates(k)

        def q(c: sqlite3.Connection) -> list[tuple[int, float]]:
            top = c.execute(
                "SELECT rowid, bm25(rag_fts) FROM rag_fts WHERE rag_fts MATCH ? "
                "ORDER BY bm25(rag_fts) LIMIT ?",
                (match, n),
            ).fetchall()
            if top:
                marks = ",".join("?" * len(top))
                ok = {
                    r[0]
                    for r in c.execute(
                        f"SELECT c.id FROM rag_chunks c WHERE c.id IN ({marks}) AND {conds}",
                        [r[0] for r in top] + args,
                    )
                }
                kept = [(r[0], -float(r[1])) for r in top if r[0] in ok]
                if len(kept) >= k or len(top) < n:
                    return kept[:k]
            return full_keyword(c, match, conds, args, k)

        rows = await self._run(q)
        return await self._hits([r[0] for r in rows], [r[1] for r in rows])

    async def _hits(self, ids: list[int], scores: list[float]) -> list[Hit]:
        if not ids:
            return []

        def q(c: sqlite3.Connection) -> dict[int, tuple[Any, ...]]:
            marks = ",".join("?" * len(ids))
            rows = c.execute(
                "SELECT c.id, c.document_id, c.chunk_id, c.text, d.title, d.source, d.metadata "
                "FROM rag_chunks c JOIN rag_documents d ON d.collection = c.collection AND "
                f"d.id = c.document_id WHERE c.id IN ({marks})",
                ids,
            ).fetchall()
            return {r[0]: r for r in rows}

        rows = await self._run(q)
        return [
            Hit(r[1], r[2], s, r[3], r[4], r[5], json.loads(r[6]))
            for i, s in zip(ids, scores, strict=True)
            if (r := rows.get(i)) is not None
        ]

    async def chunks_of(self, collection: str, doc_id: str) -> list[str]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT text FROM rag_chunks WHERE collection = ? AND document_id = ? "
                "ORDER BY ordinal",
                (collection, doc_id),
            ).fetchall()
        )
        return [r[0] for r in rows]

    async def contains_text(self, collection: str, doc_id: str) -> int:
        def q(c: sqlite3.Connection) -> int:
            n = c.execute(
                "SELECT count(*) FROM rag_chunks WHERE collection = ? AND document_id = ?",
                (collection, doc_id),
            ).fetchone()[0]
            n += c.execute(
                "SELECT count(*) FROM rag_fts WHERE rowid NOT IN (SELECT id FROM rag_chunks)"
            ).fetchone()[0]
            return int(n)

        return await self._run(q)

    async def stats(self, collection: str) -> dict[str, Any]:
        def q(c: sqlite3.Connection) -> dict[str, Any]:
            chunks, size = c.execute(
                "SELECT count(*), coalesce(sum(length(text) + length(embedding)), 0) "
                "FROM rag_chunks WHERE collection = ?",
                (collection,),
            ).fetchone()
            orphans = c.execute(
                "SELECT count(*) FROM rag_chunks c WHERE collection = ? AND NOT EXISTS "
                "(SELECT 1 FROM rag_documents d WHERE d.collection = c.collection "
                "AND d.id = c.document_id)",
                (collection,),
            ).fetchone()[0]
            orphans += c.execute(
                "SELECT count(*) FROM rag_fts WHERE rowid NOT IN (SELECT id FROM rag_chunks)"
            ).fetchone()[0]
            return {"chunks": chunks, "index_bytes": size, "orphans": orphans}

        return await self._run(q)


def candidates(k: int) -> int:
    """Phase-1 depth of :meth:`SqliteRagStore.keyword`: deep enough that a moderately
    selective filter still fills k from it."""
    return max(4 * k, 100)


def _chunk_conditions(
    collection: str, groups: list[str] | None, where: MetadataFilter | None
) -> tuple[str, list[Any]]:
    """``WHERE`` conditions on ``rag_chunks c``: collection, ACL groups, metadata filter."""
    sql = "c.collection = ?"
    args: list[Any] = [collection]
    if groups is not None:
        sql += " AND (" + " OR ".join("instr(c.acl, ?) > 0" for _ in groups) + ")"
        args += [f"|{g}|" for g in groups]
    if where:
        cond, extra = filter_sql(where)
        sql += (
            " AND EXISTS (SELECT 1 FROM rag_documents d WHERE d.collection = c.collection "
            f"AND d.id = c.document_id AND {cond})"
        )
        args += extra
    return sql, args


def full_keyword(
    c: sqlite3.Connection, match: str, conds: str, args: list[Any], k: int
) -> list[tuple[int, float]]:
    """The one-query BM25 top-k with the filter inside: exact at any selectivity, slow
    when many chunks match (BM25 and the join run for each)."""
    rows = c.execute(
        "SELECT c.id, -bm25(rag_fts) FROM rag_fts JOIN rag_chunks c ON c.id = rag_fts.rowid "
        f"WHERE rag_fts MATCH ? AND {conds} ORDER BY bm25(rag_fts) LIMIT ?",
        [match, *args, k],
    ).fetchall()
    return [(r[0], float(r[1])) for r in rows]


def _delete_chunks(c: sqlite3.Connection, collection: str, doc_id: str) -> None:
    c.execute(
        "DELETE FROM rag_fts WHERE rowid IN (SELECT id FROM rag_chunks WHERE collection = ? "
        "AND document_id = ?)",
        (collection, doc_id),
    )
    c.execute(
        "DELETE FROM rag_chunks WHERE collection = ? AND document_id = ?", (collection, doc_id)
    )


def _bump(c: sqlite3.Connection, collection: str) -> None:
    c.execute(
        "UPDATE rag_collections SET generation = generation + 1, last_ingest = ? WHERE name = ?",
        (time.time(), collection),
    )
