"""Retrieval on the caller's trace: what a search asked, what came back, how fast, how full.

A search appends one record to ``RequestContext.retrievals``; the trace writer
turns each into a ``rag.retrieval`` span (``telemetry/spans.py``) whose
``retrieval.documents`` attribute the console's reconstruction already reads.
The query text is content: the recorder keeps, redacts or drops it following
``traces.capture_content``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from pilothouse.gateway.context import RequestContext
from pilothouse.rag.service import SearchResult

QUERY_ATTR = "pilothouse.retrieval.query"
SPAN_NAME = "rag.retrieval"


def record(
    ctx: RequestContext, collection: str, query: str, result: SearchResult, *, source: str
) -> None:
    """Remember one search on the request (``source``: search endpoint or prompt bundle)."""
    end = time.perf_counter()
    ctx.retrievals.append(
        {
            "collection": collection,
            "query": query,
            "mode": result.mode,
            "k": result.k,
            "underfilled": result.underfilled,
            "latency_ms": round(result.latency_ms, 3),
            "started": end - result.latency_ms / 1000,
            "ended": end,
            "source": source,
            # The end user's id only (never the token or their groups).
            "principal": ctx.principal.sub if ctx.principal is not None else None,
            "hits": [
                {"id": h.document_id, "chunk_id": h.chunk_id, "score": h.score} for h in result.hits
            ],
        }
    )


def span_attributes(rec: dict[str, Any]) -> dict[str, Any]:
    hits = rec["hits"]
    attrs = {
        "pilothouse.retrieval.collection": rec["collection"],
        "pilothouse.retrieval.mode": rec["mode"],
        "pilothouse.retrieval.k": rec["k"],
        "pilothouse.retrieval.returned": len(hits),
        "pilothouse.retrieval.underfilled": rec["underfilled"],
        "pilothouse.retrieval.latency_ms": rec["latency_ms"],
        "pilothouse.retrieval.source": rec["source"],
        "pilothouse.retrieval.document_ids": [h["id"] for h in hits],
        "pilothouse.retrieval.scores": [h["score"] for h in hits],
        "retrieval.documents": orjson.dumps(hits).decode(),
        QUERY_ATTR: rec["query"][:2000],
    }
    if rec.get("principal") is not None:
        attrs["pilothouse.retrieval.principal"] = rec["principal"]
    return attrs
