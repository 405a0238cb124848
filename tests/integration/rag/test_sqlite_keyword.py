"""The embedded engine's in-process BM25 equals FTS5's own ``bm25()`` ranking.

The reference is computed independently by SQLite: the full ``MATCH ... ORDER BY bm25()``
query with the ACL and metadata conditions inside, over a database holding one collection
(FTS5 counts N, n and the average length over its whole table; the in-process index counts
per collection, so the two agree exactly only there). Equal scores may be ordered
differently, so the check is on the score sequence plus each returned chunk's own score.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pilothouse.rag.store import ChunkRecord, CollectionState, DocumentRecord, keyword_terms
from pilothouse.rag.store_sqlite import SqliteRagStore, filter_sql

DOCS = 300
VEC = np.ones(4, np.float32) / 2


async def fill(s: SqliteRagStore, other: bool) -> None:
    for name in ("handbook", "other"):
        await s.set_collection(CollectionState(name, "e", 1, 4, None))
    for d in range(DOCS):
        # narrow documents mention "routing" once in long text, so they rank below every
        # wide one; the rest repeat it (better BM25) so the top of the ranking is all wide
        narrow = d % 100 == 7
        if narrow:
            text = "routing " + " ".join(f"filler{d}w{i}" for i in range(60))
        else:
            text = " ".join(["Routing"] * (1 + d % 5) + ["budgets", f"note{d}", "routes"])
        team = "finance" if d % 50 == 3 else "eng"
        acl = ["narrow"] if narrow else ["wide"]
        doc = DocumentRecord(str(d), "h", acl=acl, metadata={"team": team}, embedder="e")
        await s.put("handbook", doc, [ChunkRecord(f"{d}#0", 0, text, VEC)])
    if other:  # another collection in the shared FTS table, with far more "routing"
        for d in range(150):
            doc = DocumentRecord(f"o{d}", "h", acl=["wide"], embedder="e")
            await s.put("other", doc, [ChunkRecord(f"o{d}#0", 0, "routing " * 8, VEC)])


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    s = SqliteRagStore(str(tmp_path / "rag.db"))
    await fill(s, other=False)
    yield s
    await s.close()


async def reference(
    store: SqliteRagStore, query: str, groups: list[str] | None, where: Any = None
) -> dict[str, float]:
    """Every readable, matching chunk's FTS5 score (positive: ``-bm25()``)."""
    match = " OR ".join(f'"{t}"' for t in keyword_terms(query))
    sql = "c.collection = 'handbook'"
    args: list[Any] = []
    if groups is not None:
        sql += " AND (" + " OR ".join("instr(c.acl, ?) > 0" for _ in groups) + ")"
        args += [f"|{g}|" for g in groups]
    if where:
        cond, extra = filter_sql(where)
        sql += f" AND EXISTS (SELECT 1 FROM rag_documents d WHERE d.id = c.document_id AND {cond})"
        args += extra
    rows = await store._run(
        lambda c: c.execute(
            "SELECT c.chunk_id, -bm25(rag_fts) FROM rag_fts JOIN rag_chunks c "
            f"ON c.id = rag_fts.rowid WHERE rag_fts MATCH ? AND {sql}",
            [match, *args],
        ).fetchall()
    )
    return {r[0]: float(r[1]) for r in rows}


CASES = [
    (None, None),
    (["wide"], None),
    (["narrow"], None),  # 3 readable chunks, all ranked below every wide one
    (["narrow", "wide"], None),
    (None, {"team": ["finance"]}),  # 6 chunks: a selective metadata filter
    (["narrow"], {"team": ["finance"]}),  # nothing readable matches
]
QUERIES = ("routing", "routing budgets", "budgets note17", "ROUTE", "nothing-matches-this")


@pytest.mark.parametrize(("groups", "where"), CASES)
@pytest.mark.parametrize("k", [1, 3, 40, 1000])
async def test_ranking_equals_fts5_bm25(
    store: SqliteRagStore, groups: list[str] | None, where: Any, k: int
) -> None:
    for query in QUERIES:
        got = await store.keyword("handbook", query, k, groups, where)
        want = await reference(store, query, groups, where)
        best = sorted(want.values(), reverse=True)[:k]
        assert len(got) == len(best), (query, groups, k)  # k results whenever k exist
        assert [h.score for h in got] == pytest.approx(best, rel=1e-9, abs=1e-12)
        for h in got:  # each one readable, matching, and scored as FTS5 scores it
            assert h.chunk_id in want and h.score == pytest.approx(want[h.chunk_id], rel=1e-9)


async def test_a_narrow_group_gets_its_k_chunks(store: SqliteRagStore) -> None:
    hits = await store.keyword("handbook", "routing", 3, ["narrow"])
    assert sorted(h.document_id for h in hits) == ["107", "207", "7"]
    assert all(h.score > 0 for h in hits)
    wide = await store.keyword("handbook", "routing", 3, ["wide"])
    assert len(wide) == 3 and all(int(h.document_id) % 100 != 7 for h in wide)
    assert wide[0].score >= wide[1].score >= wide[2].score > hits[0].score


async def test_another_collection_changes_nothing(store: SqliteRagStore, tmp_path: Path) -> None:
    shared = SqliteRagStore(str(tmp_path / "shared.db"))
    await fill(shared, other=True)
    try:
        for query in QUERIES:
            alone = await store.keyword("handbook", query, 50, None)
            mixed = await shared.keyword("handbook", query, 50, None)
            assert [h.score for h in mixed] == pytest.approx([h.score for h in alone], rel=1e-9)
            assert all(not h.document_id.startswith("o") for h in mixed)
    finally:
        await shared.close()


async def test_tokens_fold_case_diacritics_and_stems(store: SqliteRagStore) -> None:
    doc = DocumentRecord("x", "h", acl=["wide"], embedder="e")
    await store.put("handbook", doc, [ChunkRecord("x#0", 0, "Déjà-vu RÉSUMÉS Naïve", VEC)])
    for query in ("deja", "resume", "resumes", "NAIVE"):
        hits = await store.keyword("handbook", query, 5, None)
        assert [h.chunk_id for h in hits] == ["x#0"], query
        assert hits[0].score == pytest.approx((await reference(store, query, None))["x#0"])


async def test_delete_and_reingest_are_seen_at_once(store: SqliteRagStore) -> None:
    assert "17#0" in [h.chunk_id for h in await store.keyword("handbook", "note17", 5, None)]
    await store.delete("handbook", "17")
    assert await store.keyword("handbook", "note17", 5, None) == []
    doc = DocumentRecord("17", "h2", acl=["wide"], embedder="e")
    await store.put("handbook", doc, [ChunkRecord("17#0", 0, "zeppelin hangar", VEC)])
    assert [h.chunk_id for h in await store.keyword("handbook", "zeppelins", 5, None)] == ["17#0"]
    assert await store.keyword("handbook", "note17", 5, None) == []


async def test_another_processes_ingest_is_seen(store: SqliteRagStore) -> None:
    assert await store.keyword("handbook", "quokka", 5, None) == []
    script = (
        "import asyncio, sys, numpy as np\n"
        "from pilothouse.rag.store import ChunkRecord, DocumentRecord\n"
        "from pilothouse.rag.store_sqlite import SqliteRagStore\n"
        "async def main():\n"
        "    s = SqliteRagStore(sys.argv[1])\n"
        "    doc = DocumentRecord('q', 'h', acl=['wide'], embedder='e')\n"
        "    v = np.ones(4, np.float32) / 2\n"
        "    await s.put('handbook', doc, [ChunkRecord('q#0', 0, 'a quokka smiles', v)])\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script, store.path], check=True, timeout=60)
    hits = await store.keyword("handbook", "quokka", 5, ["wide"])
    assert [h.chunk_id for h in hits] == ["q#0"]


async def test_groups_empty_reads_nothing(store: SqliteRagStore) -> None:
    assert await store.keyword("handbook", "routing", 5, []) == []
