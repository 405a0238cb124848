"""OpenAPI operations of the console's guards and RAG pages (HTML; ``gateway/openapi_ops.py``)."""

from __future__ import annotations

from pilothouse.gateway.openapi import Operation, content, errors, path_param, query

HTML = "text/html"
_PAGE = {200: content({"type": "string"}, HTML), 303: {}}


def _page(path: str, summary: str, *params: dict[str, object]) -> Operation:
    return Operation(
        "GET", path, summary, "console", "console", params=params, ok=_PAGE,
        errors=errors(400, 403, 404), error_media=HTML,
    )  # fmt: skip


OPERATIONS: list[Operation] = [
    _page(
        "/console/guards",
        "Blocks, redactions and flags over time by guard, entity type, key and alias",
        query("since", "24h, 7d or a UTC date/time"),
        query("key", "key id"),
        query("model", "model alias"),
    ),
    _page("/console/collections", "RAG collections and their status"),
    _page(
        "/console/collections/{name}",
        "A collection's stale documents and search playground (dense, keyword, hybrid)",
        path_param("name", "collection name"),
        query("q", "search query"),
        query("k", "results per mode, 1 to 50"),
    ),
]
