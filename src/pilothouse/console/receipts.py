"""Read the proof a request left on its trace: the guard enforcement receipt and the
retrieval spans, as the request page's guard and retrieval panels show them.

Both come from gateway spans (``guard/receipt.py`` and ``rag/trace.py`` write
them). A receipt never holds a sensitive value, so every role sees it; a
retrieval's query is content, so the viewer role gets it blanked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from pilothouse.guard.state import SEVERITY

RECEIPT_SPAN = "guard.enforcement"
RETRIEVAL_SPAN = "rag.retrieval"
G = "pilothouse.guard."
R = "pilothouse.retrieval."


@dataclass(frozen=True, slots=True)
class GuardRun:
    guard: str
    type: str
    stage: str
    segment: str
    verdict: str
    entities: tuple[tuple[str, int], ...]
    score: float | None
    latency_ms: float | None
    # What else the guard recorded (a classifier's name, model and time, the request its
    # remote call made, an error's type): never a value found.
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def classifier_request(self) -> str | None:
        return next((v for k, v in self.extra if k == "classifier_request"), None)


@dataclass(slots=True)
class Receipt:
    policy: str
    verdict: str
    summary: str
    cacheable: bool | None
    runs: list[GuardRun] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RetrievedHit:
    rank: int
    document_id: str
    chunk_id: str | None
    score: float | None


@dataclass(slots=True)
class Retrieval:
    collection: str
    mode: str
    k: int | None
    returned: int
    underfilled: bool
    latency_ms: float | None
    source: str
    query: str | None  # None: not captured, or hidden from this role
    hits: list[RetrievedHit] = field(default_factory=list)


def _attrs(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    attrs = obj.get("attributes")
    return attrs if isinstance(attrs, Mapping) else {}


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _entities(raw: Any) -> tuple[tuple[str, int], ...]:
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return ()
    if not isinstance(raw, Mapping):
        return ()
    out = []
    for name, n in sorted(raw.items()):
        if isinstance(n, int) and not isinstance(n, bool):
            out.append((str(name), n))
    return tuple(out)


_RUN_FIELDS = frozenset(
    G + k for k in ("guard", "type", "stage", "segment", "verdict", "entities", "score",
                    "latency_ms")
)  # fmt: skip


def guard_run(attrs: Mapping[str, Any]) -> GuardRun:
    extra = tuple(
        (str(k)[len(G) :], str(v))
        for k, v in sorted(attrs.items())
        if str(k).startswith(G) and k not in _RUN_FIELDS and isinstance(v, str | int | float)
    )
    return GuardRun(
        guard=str(attrs.get(G + "guard") or "?"),
        type=str(attrs.get(G + "type") or "?"),
        stage=str(attrs.get(G + "stage") or "?"),
        segment=str(attrs.get(G + "segment") or "?"),
        verdict=str(attrs.get(G + "verdict") or "?"),
        entities=_entities(attrs.get(G + "entities")),
        score=_float(attrs.get(G + "score")),
        latency_ms=_float(attrs.get(G + "latency_ms")),
        extra=extra,
    )


def receipt(span_rows: Sequence[Mapping[str, Any]]) -> Receipt | None:
    """The request's enforcement receipt, or ``None`` when no guard policy applied."""
    span = next((s for s in span_rows if s.get("name") == RECEIPT_SPAN), None)
    if span is None:
        return None
    attrs = _attrs(span)
    cacheable = attrs.get(G + "cacheable")
    out = Receipt(
        policy=str(attrs.get(G + "policy") or "?"),
        verdict=str(attrs.get(G + "verdict") or "pass"),
        summary=str(attrs.get(G + "summary") or ""),
        cacheable=cacheable if isinstance(cacheable, bool) else None,
    )
    for event in span.get("events") or []:
        if isinstance(event, Mapping) and event.get("name") == "guard.run":
            out.runs.append(guard_run(_attrs(event)))
    return out


def worst_per_guard(runs: Sequence[GuardRun]) -> dict[tuple[str, str], str]:
    """Per (stage, guard) the most severe verdict: the grain of ``x-pilothouse-guards``."""
    worst: dict[tuple[str, str], str] = {}
    for run in runs:
        key = (run.stage, run.guard)
        if SEVERITY.get(run.verdict, 0) >= SEVERITY.get(worst.get(key, "pass"), 0):
            worst[key] = run.verdict
    return worst


def _list(value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return []
    return value if isinstance(value, list) else []


def retrievals(span_rows: Sequence[Mapping[str, Any]], *, show_query: bool) -> list[Retrieval]:
    """Every gateway search made for the request, in the order they ran."""
    out = []
    for span in span_rows:
        if span.get("name") != RETRIEVAL_SPAN:
            continue
        attrs = _attrs(span)
        hits = []
        for rank, item in enumerate(_list(attrs.get("retrieval.documents")), start=1):
            if isinstance(item, Mapping):
                chunk = item.get("chunk_id")
                hits.append(
                    RetrievedHit(
                        rank,
                        str(item.get("id", "?")),
                        None if chunk is None else str(chunk),
                        _float(item.get("score")),
                    )
                )
        query = attrs.get(R + "query")
        k = attrs.get(R + "k")
        returned = attrs.get(R + "returned")
        out.append(
            Retrieval(
                collection=str(attrs.get(R + "collection") or "?"),
                mode=str(attrs.get(R + "mode") or "?"),
                k=k if isinstance(k, int) and not isinstance(k, bool) else None,
                returned=returned if isinstance(returned, int) else len(hits),
                underfilled=attrs.get(R + "underfilled") is True,
                latency_ms=_float(attrs.get(R + "latency_ms")),
                source=str(attrs.get(R + "source") or "?"),
                query=str(query) if show_query and isinstance(query, str) and query else None,
                hits=hits,
            )
        )
    return out
