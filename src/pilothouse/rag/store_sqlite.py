"""Embedded engine: SQLite (FTS5 on disk) + in-process NumPy vector and BM25 indexes.

This Python cannot load SQLite extensions, so vectors live as float32 BLOBs
and are searched by one matrix product over the collection (≈7 ms for 100k x
384 here). The matrix is cached per collection and reloaded when the
collection's generation counter (bumped by every write, from any process)
moves; keyword search scores FTS5's postings the same way (keyword_index.py).
The ACL filter is a mask applied *before* the top-k selection in both, so a
caller gets k readable chunks whenever k exist.
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

from pilothouse.rag.keyword_index import KeywordIndex, Stemmer, top_k
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
        self._keyword: dict[str, KeywordIndex] = {}
        self._stemmer = Stemmer()

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
        eligible = await self._eligible(collection, m, groups, where)
        top = top_k(scores, eligible, k)
        return await self._hits([int(m.ids[i]) for i in top], [float(scores[i]) for i in top])

    async def _eligible(
        self, collection: str, m: _Matrix, groups: list[str] | None, where: MetadataFilter | None
    ) -> np.ndarray:
        """Rows the caller may read and the filter keeps: masked *before* any top-k, so k
        readable, matching chunks come back whenever k exist."""
        mask = m.readable(groups) if groups is not None else np.ones(len(m.ids), dtype=bool)
        if where:
            matching = await self._matching_documents(collection, where)
            mask = mask & np.isin(m.docs, np.array(sorted(matching), dtype=object))
        return mask

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
        """Exact BM25 top-k of the readable, matching chunks, scored in process
        (:mod:`pilothouse.rag.keyword_index`) from FTS5's postings."""
        terms = keyword_terms(query)
        if not terms or (groups is not None and not groups):
            return []
        m = await self._matrix(collection)

        def q(c: sqlite3.Connection) -> tuple[np.ndarray, np.ndarray]:
            index = self._keyword.get(collection)
            if index is None or index.generation != m.generation:
                index = KeywordIndex.load(c, m.generation, m.ids)
                self._keyword[collection] = index
            return index.scores(c, self._stemmer, terms)

        scores, matched = await self._run(q)
        if not matched.any():
            return []
        eligible = matched & await self._eligible(collection, m, groups, where)
        top = top_k(scores, eligible, k)
        return await self._hits([int(m.ids[i]) for i in top], [float(scores[i]) for i in top])

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
