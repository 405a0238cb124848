"""A bundle's ``retrieval:`` block: validated at push, turned into context at serve time.

``retrieval: {collection, k, query: "{{ question }}", mode?}`` makes the gateway
search the collection (as the caller, with its ACL groups) and hand the hits
to the template as ``{{ context }}``. A bundle whose messages never mention
``context`` gets the passages as one system message instead, placed after
its leading system messages, so a retrieval block is never silently unused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pilothouse.errors import InvalidRequestError
from pilothouse.rag.store import Hit

CONTEXT = "context"  # the template variable the gateway fills with the retrieved passages
MODES = ("dense", "keyword", "hybrid")
_FIELDS = ("collection", "k", "query", "mode")
SYSTEM_PREFIX = (
    "Answer from the retrieved passages below; each starts with its document id in brackets. "
    "If they do not contain the answer, say so.\n\n"
)

# (request context, the bundle's retrieval block, the rendered query) -> hits the caller may read
Retriever = Callable[[Any, dict[str, Any], str], Awaitable[list[Hit]]]


def _bad(message: str, field: str) -> InvalidRequestError:
    return InvalidRequestError(f"invalid prompt bundle: `{field}` {message}", param=field)


def normalize(raw: Any) -> dict[str, Any]:
    """The canonical retrieval block; a 400 naming the field for anything malformed."""
    if not isinstance(raw, dict):
        raise _bad("must be an object {collection, k, query}", "retrieval")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise _bad("is not a retrieval field", f"retrieval.{unknown[0]}")
    collection = raw.get("collection")
    if not isinstance(collection, str) or not collection.strip():
        raise _bad("is required: a configured RAG collection", "retrieval.collection")
    k = raw.get("k")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000):
        raise _bad("must be an integer between 1 and 1000", "retrieval.k")
    query = raw.get("query")
    if not isinstance(query, str) or not query.strip():
        raise _bad('is required: a template such as "{{ question }}"', "retrieval.query")
    mode = raw.get("mode")
    if mode is not None and mode not in MODES:
        raise _bad(f"must be one of {', '.join(MODES)}", "retrieval.mode")
    return {"collection": collection, "k": k, "query": query, "mode": mode}


def format_context(hits: Sequence[Hit]) -> str:
    """Passages, best first, each tagged with its document id (what an answer cites)."""
    parts = []
    for hit in hits:
        title = f" {hit.title}" if hit.title else ""
        parts.append(f"[{hit.document_id}]{title}\n{hit.text.strip()}")
    return "\n\n".join(parts) if parts else "(no passages were retrieved)"


def uses_context(bundle: dict[str, Any]) -> bool:
    from pilothouse.releases.render import declared_names

    return any(
        CONTEXT in declared_names(m["content"], f"messages[{i}].content")
        for i, m in enumerate(bundle["messages"])
    )


def inject(messages: list[dict[str, Any]], context: str) -> list[dict[str, Any]]:
    """The messages with the context as a system message after the leading system turns."""
    at = 0
    while at < len(messages) and messages[at].get("role") in ("system", "developer"):
        at += 1
    block = {"role": "system", "content": SYSTEM_PREFIX + context}
    return [*messages[:at], block, *messages[at:]]
