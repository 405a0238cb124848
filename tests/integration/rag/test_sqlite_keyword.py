"""The embedded engine's two-phase keyword search equals the one-query BM25 top-k.

Phase 1 (FTS5 alone, ``ORDER BY bm25 LIMIT``) must never change what a caller gets: same chunks,
same order, same scores as the filter-inside-the-query statement, including when a narrow
ACL group or metadata filter leaves phase 1 short and the exact fallback has to fill k.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pilothouse.rag.store import ChunkRecord, CollectionState, DocumentRecord, keyword_terms
from pilothouse.rag.store_sqlite import (
    SqliteRagStore,
    _chunk_conditions,
    candidates,
    full_keyword,
)

DOCS = 300


@pytest.fixture
async def store(tmp_path: Path) -> SqliteRagStore:
    s = SqliteRagStore(str(tmp_path / "rag.db"))
    vec = np.ones(4, np.float32) / 2
    for name in ("handbook", "other"):
        await s.set_collection(CollectionState(name, "e", 1, 4, None))
    for d in range(DOCS):
        # narrow documents mention "routing" once in long text, so they rank below every
        # wide one; the rest repeat it (better BM25) so the top of the ranking is all wide
        narrow = d % 100 == 7
        if narrow:
            text = "routing " + " ".join(f"filler{d}w{i}" for i in range(60))
        else:
            text = " ".join(["routing"] * (1 + d % 5) + ["budgets", f"note{d}"])
        team = "finance" if d % 50 == 3 else "eng"
        acl = ["narrow"] if narrow else ["wide"]
        doc = DocumentRecord(str(d), "h", acl=acl, metadata={"team": team}, embedder="e")
        await s.put("handbook", doc, [ChunkRecord(f"{d}#0", 0, text, vec)])
    # another collection in the shared FTS table: its matches fill phase 1 but never pass
    for d in range(150):
        doc = DocumentRecord(f"o{d}", "h", acl=["wide"], embedder="e")
        await s.put("other", doc, [ChunkRecord(f"o{d}#0", 0, "routing " * 8, vec)])
    yield s  # type: ignore[misc]
    await s.close()


async def reference(
    store: SqliteRagStore, query: str, k: int, groups: list[str] | None, where: object = None
) -> list[tuple[str, float]]:
    match = " OR ".join(f'"{t}"' for t in keyword_terms(query))
    conds, args = _chunk_conditions("handbook", groups, where)  # type: ignore[arg-type]
    rows = await store._run(lambda c: full_keyword(c, match, conds, args, k))
    hits = await store._hits([r[0] for r in rows], [r[1] for r in rows])
    return [(h.chunk_id, round(h.score, 9)) for h in hits]


@pytest.mark.parametrize(
    ("groups", "where"),
    [
        (None, None),
        (["wide"], None),
        (["narrow"], None),  # 3 readable chunks, all below the top candidates(k)
        (["narrow", "wide"], None),
        (None, {"team": ["finance"]}),  # 6 chunks: a selective metadata filter
        (["narrow"], {"team": ["finance"]}),  # nothing readable matches
    ],
)
@pytest.mark.parametrize("k", [1, 3, 10, 40])
async def test_two_phase_equals_the_full_query(
    store: SqliteRagStore, groups: list[str] | None, where: object, k: int
) -> None:
    for query in ("routing", "routing budgets", "budgets note17", "nothing-matches-this"):
        got = await store.keyword("handbook", query, k, groups, where)  # type: ignore[arg-type]
        want = await reference(store, query, k, groups, where)
        assert [(h.chunk_id, round(h.score, 9)) for h in got] == want, (query, groups, k)


async def test_a_narrow_group_is_filled_by_the_fallback(store: SqliteRagStore) -> None:
    # more than candidates(3) chunks match and none of the best ones is readable:
    # phase 1 alone would return nothing, the caller must still get its 3 chunks
    assert candidates(3) < DOCS + 150
    hits = await store.keyword("handbook", "routing", 3, ["narrow"])
    assert sorted(h.document_id for h in hits) == ["107", "207", "7"]
    assert all(h.score > 0 for h in hits)
    wide = await store.keyword("handbook", "routing", 3, ["wide"])
    assert len(wide) == 3 and all(int(h.document_id) % 100 != 7 for h in wide)
    assert wide[0].score >= wide[1].score >= wide[2].score > hits[0].score


async def test_groups_empty_reads_nothing(store: SqliteRagStore) -> None:
    assert await store.keyword("handbook", "routing", 5, []) == []
