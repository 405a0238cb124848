"""Console pages for RAG: the configured collections with their health, one collection's
stale documents, and a search playground that runs dense, keyword and hybrid side by side.

Status figures are ``RagService.status`` (what ``pilothouse rag status`` prints).
The playground searches as the signed-in principal: its key's ``metadata.groups``
(``rag.routes.caller_groups``; admins and the config admin key read everything), with
the filter inside the index query as on ``POST /v1/rag/{collection}/search``. The three
searches are one gateway request on that key — embedded through the collection's
embedder alias, costed, and traced with a retrieval span per mode — so a playground
search shows up in the request log like any other. Chunk text is content: the viewer
role sees documents, chunk ids and scores, never the text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pilothouse.console.auth import Session
from pilothouse.console.web import PREFIX
from pilothouse.errors import PilothouseError
from pilothouse.gateway import admission, pipeline
from pilothouse.gateway.context import RequestContext
from pilothouse.gateway.runtime import Runtime
from pilothouse.limits.keys import KeyRecord
from pilothouse.rag import trace as rag_trace
from pilothouse.rag.acl import caller_groups
from pilothouse.rag.bundle import store_of
from pilothouse.rag.routes import gateway_embed
from pilothouse.rag.service import MODES, PUBLIC, RagService, SearchResult
from pilothouse.telemetry.tracecontext import new_trace_id

if TYPE_CHECKING:
    from pilothouse.console.handlers import Console

BASE = f"{PREFIX}/collections"
MAX_QUERY = 2000
MAX_K = 50
MAX_STALE_SHOWN = 500
FEATURE = "console.search"  # request metadata that marks playground searches in the log


async def _no_embed(alias: str, texts: list[str]) -> np.ndarray:
    raise PilothouseError("status pages do not embed")  # pragma: no cover - never called


@dataclass(slots=True)
class Searcher:
    """Who the playground searches as: their key (``None``: the config admin key)."""

    key: KeyRecord | None
    groups: list[str] | None  # None: reads everything

    @property
    def label(self) -> str:
        if self.groups is None:
            return "every document (admin)"
        return ", ".join(self.groups) if self.groups else "no groups: public documents only"


async def searcher_for(rt: Runtime, session: Session) -> Searcher:
    key_id = session.principal.key_id
    if key_id is None:
        return Searcher(None, None)  # the config admin key: an admin
    key = await rt.keys.get(key_id)
    return Searcher(key, caller_groups(key))


def readable(doc: Any, groups: list[str] | None) -> bool:
    """The ACL rule of ``GET /v1/rag/{collection}/documents/{id}``."""
    return groups is None or bool(set(doc.acl) & {*groups, PUBLIC})


def stale_rows(
    status: dict[str, Any], docs: dict[str, Any], max_age_s: int | None, groups: list[str] | None
) -> tuple[list[dict[str, Any]], int]:
    """The stale documents the principal may read, and how many others are stale."""
    now = time.time()
    out: list[dict[str, Any]] = []
    hidden = 0
    for doc_id in status["stale_documents"]:
        doc = docs.get(doc_id)
        if doc is None or not readable(doc, groups):
            hidden += 1
            continue
        if len(out) >= MAX_STALE_SHOWN:
            continue
        old = max_age_s is not None and now - doc.indexed_at > max_age_s
        why = "older than max_age" if old else "source changed"
        out.append({"id": doc_id, "doc": doc, "why": why, "indexed": _at(doc.indexed_at)})
    return out, hidden


def _at(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


async def _status(service: RagService, name: str) -> dict[str, Any]:
    """``rag status`` figures, with the last ingest as a UTC time for the templates."""
    status = await service.status(name)
    return {**status, "last_ingest_at": _at(status["last_ingest"])}


class RagPages:
    def __init__(self, console: Console) -> None:
        self.console = console

    def _service(self, rt: Runtime) -> RagService:
        return RagService(rt.settings, store_of(rt), _no_embed)

    async def list_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        rows = []
        service = self._service(rt) if rt.settings.rag.collections else None
        for name, coll in sorted(rt.settings.rag.collections.items()):
            assert service is not None
            try:
                rows.append({"name": name, "coll": coll, "status": await _status(service, name)})
            except Exception as exc:  # one broken collection must not hide the others
                rows.append({"name": name, "coll": coll, "status": None, "error": str(exc)[:300]})
        return self.console.render(
            request, "collections.html", session, nav="collections", rows=rows,
            store_url=_safe_url(rt.settings.rag.store.url),
        )  # fmt: skip

    async def detail_page(self, rt: Runtime, request: Request, session: Session) -> Response:
        name = request.path_params["name"][:200]
        coll = rt.settings.rag.collections.get(name)
        if coll is None:
            known = ", ".join(sorted(rt.settings.rag.collections)) or "none configured"
            return self.console.render(
                request, "error.html", session, 404, nav="collections", title="Not found",
                message=f"There is no collection {name!r} in the config (collections: {known}).",
            )  # fmt: skip
        service = self._service(rt)
        status = await _status(service, name)
        docs = {d.id: d for d in await service.store.documents(name)}
        searcher = await searcher_for(rt, session)
        stale, hidden = stale_rows(status, docs, coll.freshness.max_age_s, searcher.groups)
        query = (request.query_params.get("q") or "").strip()[:MAX_QUERY]
        errors: list[str] = []
        k = coll.search.k
        raw_k = (request.query_params.get("k") or "").strip()
        if raw_k:
            if raw_k.isdigit() and 1 <= int(raw_k) <= MAX_K:
                k = int(raw_k)
            else:
                errors.append(f"“k” must be a whole number from 1 to {MAX_K}; got {raw_k[:16]!r}.")
        results: list[SearchResult] = []
        request_id = None
        if query and not errors:
            results, request_id, error = await self._search(rt, name, query, k, searcher)
            if error:
                errors.append(error)
        return self.console.render(
            request, "collection.html", session, 400 if errors else 200, nav="collections",
            collection=name, coll=coll, st=status, stale=stale, stale_hidden=hidden,
            searcher=searcher, query=query, k=k, max_k=MAX_K, errors=errors, results=results,
            request_id=request_id, show_text=session.principal.role != "viewer",
        )  # fmt: skip

    async def _search(
        self, rt: Runtime, name: str, query: str, k: int, who: Searcher
    ) -> tuple[list[SearchResult], str, str | None]:
        """Dense, keyword and hybrid as one traced gateway request on the principal's key."""
        coll = rt.settings.rag.collections[name]
        ctx = RequestContext(request_id=pipeline.new_request_id(), endpoint="rag")
        ctx.trace_id = new_trace_id()
        ctx.key = who.key
        ctx.metadata = {"feature": FEATURE}
        results: list[SearchResult] = []
        error = None
        try:
            ctx.alias = coll.embedder
            if who.key is not None:
                admission.authorize(who.key, coll.embedder)
            embed = gateway_embed(rt, ctx, coll.embedder)
            service = RagService(rt.settings, store_of(rt), embed)
            for mode in MODES:
                result = await service.search(name, query, k=k, mode=mode, groups=who.groups)
                rag_trace.record(ctx, name, query, result, source="console")
                rt.telemetry.metrics.observe_rag_search(
                    collection=name, mode=mode, underfilled=result.underfilled
                )
                results.append(result)
        except PilothouseError as exc:
            pipeline.fail(ctx, exc)
            error = f"The search failed: {exc.message}"
        finally:
            pipeline.finish(rt, ctx)
        return results, ctx.request_id, error

    def routes(self) -> list[BaseRoute]:
        page = self.console.page
        return [
            Route(BASE, page(self.list_page, "traces.read"), methods=["GET"]),
            Route(BASE + "/{name}", page(self.detail_page, "traces.read"), methods=["GET"]),
        ]


def _safe_url(url: str) -> str:
    """The store URL without a password, if it has one."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]
