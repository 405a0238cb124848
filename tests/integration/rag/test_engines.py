"""One suite, both engines: incremental ingest, ACLs, deletion, embedder versions, crashes."""

from __future__ import annotations

import pytest

from pilothouse.errors import ConfigError
from pilothouse.rag.service import IncomingDocument, RagService
from pilothouse.rag.store import open_store
from tests.integration.rag.conftest import CountingEmbed, rag_settings

pytestmark = pytest.mark.integration

TOPICS = {
    "routing": "The router sends each request to the first healthy target and falls back "
    "to the next one when a circuit breaker opens.",
    "budgets": "Budgets cap what a virtual key may spend per day; a request that would "
    "exceed the budget is refused with HTTP 429 insufficient_quota.",
    "tracing": "Every request records a trace with spans for routing, upstream attempts and "
    "guardrails, exported over OTLP.",
}
MODES = ("dense", "keyword", "hybrid")


def doc(doc_id: str, text: str, acl: list[str] | None = None) -> IncomingDocument:
    return IncomingDocument(doc_id, text, title=doc_id, acl=acl if acl is not None else ["staff"])


async def test_reingest_touches_only_changed_documents(
    service: RagService, embedder: CountingEmbed
) -> None:
    docs = [doc(k, v) for k, v in TOPICS.items()]
    first = await service.ingest("handbook", docs)
    assert first == {"routing": "created", "budgets": "created", "tracing": "created"}
    sent = len(embedder.texts)
    again = await service.ingest("handbook", [doc(k, v) for k, v in TOPICS.items()])
    assert set(again.values()) == {"unchanged"}
    assert len(embedder.texts) == sent, "unchanged documents must not be re-embedded"
    changed = TOPICS["budgets"].replace("per day", "per month")
    result = await service.ingest(
        "handbook", [doc("routing", TOPICS["routing"]), doc("budgets", changed)]
    )
    assert result == {"routing": "unchanged", "budgets": "updated"}
    assert embedder.texts[sent:] == [changed]
    hits = (await service.search("handbook", "spend per month", k=3, mode="keyword")).hits
    assert hits[0].document_id == "budgets" and "per month" in hits[0].text


async def test_acl_filter_holds_at_k1_and_k1000(service: RagService) -> None:
    docs = [
        doc(f"eng-{i}", f"engineering note {i} about routing targets", ["eng"]) for i in range(6)
    ]
    docs += [
        doc(f"fin-{i}", f"finance note {i} about routing budgets", ["finance"]) for i in range(6)
    ]
    docs.append(doc("nobody", "routing note without groups", []))
    await service.ingest("handbook", docs)
    for mode in MODES:
        for k in (1, 1000):
            hits = (
                await service.search("handbook", "routing", k=k, mode=mode, groups=["eng"])
            ).hits
            assert hits, (mode, k)
            assert all(h.document_id.startswith("eng-") for h in hits), (mode, k)
            if k == 1000:
                assert len(hits) == 6, mode
    admin = await service.search("handbook", "routing", k=1000, mode="dense", groups=None)
    assert {h.document_id for h in admin.hits} >= {"nobody", "fin-0", "eng-0"}
    # default deny: a document without groups is readable by admins only
    other = await service.search("handbook", "without groups", k=1000, mode="keyword", groups=["x"])
    assert other.hits == [] and other.underfilled


async def test_a_narrow_group_still_gets_k_results(service: RagService) -> None:
    docs = [
        doc(f"wide-{i}", f"wide note {i} on routing and fallbacks", ["wide"]) for i in range(40)
    ]
    docs += [doc(f"narrow-{i}", f"narrow memo {i} on budget caps", ["narrow"]) for i in range(3)]
    await service.ingest("handbook", docs)
    for mode in MODES:
        result = await service.search(
            "handbook", "routing fallbacks memo", k=3, mode=mode, groups=["narrow"]
        )
        if mode == "keyword":
            assert len(result.hits) == 3, mode  # "memo" matches all three
        else:
            assert len(result.hits) == 3 and not result.underfilled, mode
        assert all(h.document_id.startswith("narrow-") for h in result.hits)


async def test_deletion_is_verified_in_every_mode(service: RagService) -> None:
    await service.ingest("handbook", [doc(k, v) for k, v in TOPICS.items()])
    probes = await service.store.chunks_of("handbook", "tracing")
    assert await service.verify_deleted("handbook", "tracing", probes), "present before delete"
    assert await service.delete("handbook", "tracing")
    assert await service.verify_deleted("handbook", "tracing", probes) == []
    for mode in MODES:
        hits = (await service.search("handbook", TOPICS["tracing"], k=1000, mode=mode)).hits
        assert "tracing" not in {h.document_id for h in hits}, mode
    assert await service.store.document("handbook", "tracing") is None
    assert (await service.status("handbook"))["orphans"] == 0


async def test_an_embedder_change_forces_a_reembed(
    rag_store_url: str, service: RagService, embedder: CountingEmbed
) -> None:
    await service.ingest("handbook", [doc(k, v) for k, v in TOPICS.items()])
    store = open_store(rag_store_url)
    try:
        changed = RagService(rag_settings(rag_store_url, embedder="embed-other"), store, embedder)
        with pytest.raises(ConfigError, match="reembed"):
            await changed.search("handbook", "budgets", mode="dense")
        with pytest.raises(ConfigError, match="reembed"):
            await changed.ingest("handbook", [doc("new", "a new page")])
        before = (await changed.status("handbook"))["embedder_version"]
        assert await changed.reembed("handbook") >= 3
        status = await changed.status("handbook")
        assert (
            status["embedder"].startswith("embed-other=")
            and status["embedder_version"] == before + 1
        )
        assert all(d.embedder_version == before + 1 for d in await store.documents("handbook"))
        hits = (await changed.search("handbook", "spending cap per key", k=1, mode="dense")).hits
        assert hits[0].document_id == "budgets"
    finally:
        await store.close()


async def test_a_crash_mid_ingest_leaves_the_previous_version_searchable(
    service: RagService, embedder: CountingEmbed
) -> None:
    await service.ingest("handbook", [doc("routing", TOPICS["routing"])])
    long_text = " ".join(
        f"Sentence {i} describes the new routing policy in detail." for i in range(60)
    )
    service.batch = 2
    embedder.fail_after = len(embedder.texts) + 2  # the second batch fails, every retry too
    with pytest.raises(RuntimeError):
        await service.ingest("handbook", [doc("routing", long_text)])
    embedder.fail_after = None
    for mode in MODES:
        hits = (await service.search("handbook", "circuit breaker opens", k=5, mode=mode)).hits
        assert hits and all(h.text == TOPICS["routing"] for h in hits), mode
    record = await service.store.document("handbook", "routing")
    assert record is not None and record.chunks == 1


async def test_metadata_filter_is_applied_inside_the_query(service: RagService) -> None:
    docs = [
        IncomingDocument(
            f"eng-{i}",
            f"deploy note {i} about routing targets",
            acl=["staff"],
            metadata={"team": "eng", "year": 2026, "draft": i == 0},
        )
        for i in range(30)
    ]
    docs += [
        IncomingDocument(
            f"fin-{i}",
            f"deploy note {i} about routing budgets",
            acl=["staff"] if i else ["board"],
            metadata={"team": "finance", "year": 2025 if i < 2 else "2026"},
        )
        for i in range(3)
    ]
    await service.ingest("handbook", docs)
    for mode in MODES:
        # a 3-in-33 filter still fills k (it is not a post-filter over the top hits)
        got = await service.search(
            "handbook", "deploy note routing", k=2, mode=mode, where={"team": ["finance"]}
        )
        assert [h.document_id[:4] for h in got.hits] == ["fin-", "fin-"], mode
        assert not got.underfilled, mode
        every = await service.search(
            "handbook", "deploy note routing", k=1000, mode=mode, where={"team": ["finance"]}
        )
        assert {h.document_id for h in every.hits} == {"fin-0", "fin-1", "fin-2"}, mode
        # ACLs and filters are ANDed: staff does not see the board-only finance note
        staff = await service.search(
            "handbook",
            "deploy note routing",
            k=1000,
            mode=mode,
            groups=["staff"],
            where={"team": ["finance"]},
        )
        assert {h.document_id for h in staff.hits} == {"fin-1", "fin-2"}, mode
        # JSON types must match: the number 2026 is not the string "2026"
        typed = await service.search(
            "handbook", "deploy note", k=1000, mode=mode, where={"year": ["2026"]}
        )
        assert {h.document_id for h in typed.hits} == {"fin-2"}, mode
        both = await service.search(
            "handbook", "deploy note", k=1000, mode=mode, where={"year": [2025, "2026"]}
        )
        assert {h.document_id for h in both.hits} == {"fin-0", "fin-1", "fin-2"}, mode
        drafts = await service.search(
            "handbook", "deploy note", k=1000, mode=mode, where={"draft": [True]}
        )
        assert [h.document_id for h in drafts.hits] == ["eng-0"], mode
        none = await service.search(
            "handbook", "deploy note", k=5, mode=mode, where={"team": ["legal"]}
        )
        assert none.hits == [] and none.underfilled, mode


async def test_a_reranker_reorders_only_readable_candidates(
    rag_store_url: str, embedder: CountingEmbed
) -> None:
    store = open_store(rag_store_url)
    search = {"mode": "hybrid", "k": 2, "rerank": "keyword-overlap"}
    svc = RagService(rag_settings(rag_store_url, search=search), store, embedder)
    try:
        await svc.ingest(
            "handbook",
            [
                doc("exact", "The daily spend cap applies per key."),
                doc("exec", "The daily spend cap per key is waived for executives.", ["exec"]),
                doc("near", "Spend limits are configured in the budgets section."),
                doc("far", "Routing falls back to the next target."),
            ],
        )
        result = await svc.search("handbook", "daily cap per key", groups=["staff"])
        assert result.hits[0].document_id == "exact"
        assert result.hits[0].score == 1.0 and len(result.hits) == 2
        assert "exec" not in {h.document_id for h in result.hits}
    finally:
        await store.close()
