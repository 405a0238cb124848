"""In-process BM25 for the embedded engine, scored in NumPy over FTS5's own postings.

FTS5 stays the source of truth on disk (writes, deletes, verify-deleted); ranking all
~10k chunks a common term matches through ``bm25()`` plus the ACL join cost 80-230 ms at
100k chunks, so keyword search reads the postings instead and scores them here, with the
ACL and metadata masks applied before the top-k selection exactly as dense search does.

Tokens are FTS5's: postings come from an ``fts5vocab`` instance table over ``rag_fts``
(``porter unicode61``: case folding, diacritics removed, Porter stems) and every query term
is stemmed by the same tokenizer in a private in-memory FTS5 table, so the terms match what
``MATCH`` would match. The formula is FTS5's ``bm25()`` (k1 = 1.2, b = 0.75,
idf = ln((N - n + 0.5) / (n + 0.5)) floored at 1e-6, one summand per query term), but
N, n and the average length are counted over the *collection* rather than the whole shared
FTS table, so one collection's ingest no longer shifts another's scores.

The index belongs to one collection generation (any write from any process bumps it):
document lengths are read once per generation from ``rag_fts_docsize``; each term's posting
arrays are fetched the first time a query uses it and kept until the generation moves.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import numpy as np

K1 = 1.2
B = 0.75
_MAX_CACHED_TERMS = 50_000

VOCAB = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.rag_fts_instance "
    "USING fts5vocab(main, rag_fts, instance)"
)


def _varint(blob: bytes) -> int:
    """First SQLite varint of an FTS5 ``docsize`` blob (the token count of column 0)."""
    value = 0
    for i, byte in enumerate(blob[:9]):
        if i == 8:
            return (value << 8) | byte
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value
    return value


class Stemmer:
    """FTS5's ``porter unicode61`` tokenizer, run on query terms (results cached)."""

    def __init__(self) -> None:
        self._conn = sqlite3.connect(":memory:", check_same_thread=False)
        self._conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize = 'porter unicode61')")
        self._conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
        self._cache: dict[str, tuple[str, ...]] = {}

    def tokens(self, term: str) -> tuple[str, ...]:
        got = self._cache.get(term)
        if got is None:
            c = self._conn
            c.execute("INSERT INTO t (rowid, x) VALUES (1, ?)", (term,))
            got = tuple(r[0] for r in c.execute("SELECT term FROM v ORDER BY offset"))
            c.execute("DELETE FROM t")
            if len(self._cache) >= _MAX_CACHED_TERMS:
                self._cache.clear()
            self._cache[term] = got
        return got


@dataclass(slots=True)
class KeywordIndex:
    """BM25 statistics of one collection generation, rows in the dense matrix's order."""

    generation: int
    order: np.ndarray  # argsort of the collection's chunk ids
    sorted_ids: np.ndarray
    lengths: np.ndarray  # tokens per row (float64)
    avgdl: float
    postings: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def load(cls, c: sqlite3.Connection, generation: int, ids: np.ndarray) -> KeywordIndex:
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        lengths = np.zeros(len(ids), dtype=np.float64)
        rows = c.execute("SELECT id, sz FROM rag_fts_docsize").fetchall()
        if rows and len(ids):
            fts_ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            sizes = np.fromiter((_varint(r[1]) for r in rows), np.float64, len(rows))
            at, ok = _locate(sorted_ids, fts_ids)
            lengths[order[at[ok]]] = sizes[ok]
        avgdl = float(lengths.mean()) if len(ids) else 0.0
        return cls(generation, order, sorted_ids, lengths, avgdl)

    def _posting(self, c: sqlite3.Connection, token: str) -> tuple[np.ndarray, np.ndarray]:
        got = self.postings.get(token)
        if got is None:
            c.execute(VOCAB)
            rows = c.execute(
                "SELECT doc, count(*) FROM temp.rag_fts_instance WHERE term = ? GROUP BY doc",
                (token,),
            ).fetchall()
            docs = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            tf = np.fromiter((r[1] for r in rows), np.float64, len(rows))
            at, ok = _locate(self.sorted_ids, docs)  # drop other collections' chunks
            got = (self.order[at[ok]], tf[ok])
            if len(self.postings) >= _MAX_CACHED_TERMS:
                self.postings.clear()
            self.postings[token] = got
        return got

    def scores(
        self, c: sqlite3.Connection, stemmer: Stemmer, terms: list[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """BM25 per row and which rows match any term (a match may score ~1e-6)."""
        n_rows = len(self.lengths)
        scores = np.zeros(n_rows, dtype=np.float64)
        matched = np.zeros(n_rows, dtype=bool)
        if not n_rows:
            return scores, matched
        norm = K1 * (1 - B + B * self.lengths / self.avgdl) if self.avgdl else np.full(n_rows, K1)
        for term in terms:
            tokens = stemmer.tokens(term)
            if len(tokens) != 1:
                continue  # keyword_terms yields single alphanumeric tokens; phrases never occur
            rows, tf = self._posting(c, tokens[0])
            if not len(rows):
                continue
            n = len(rows)
            idf = max(float(np.log((n_rows - n + 0.5) / (n + 0.5))), 1e-6)
            scores[rows] += idf * tf * (K1 + 1) / (tf + norm[rows])
            matched[rows] = True
        return scores, matched


def _locate(sorted_ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``wanted`` in ``sorted_ids`` and which of them are really there."""
    if not len(sorted_ids):
        return np.zeros(len(wanted), np.int64), np.zeros(len(wanted), bool)
    at = np.searchsorted(sorted_ids, wanted)
    at = np.minimum(at, len(sorted_ids) - 1)
    return at, sorted_ids[at] == wanted


def top_k(scores: np.ndarray, eligible: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the k best eligible rows, best first (ties by row order)."""
    take = min(k, int(eligible.sum()))
    if take <= 0:
        return np.zeros(0, np.int64)
    masked = np.where(eligible, scores, -np.inf)
    top = np.argpartition(-masked, take - 1)[:take]
    return top[np.argsort(-masked[top], kind="stable")]
