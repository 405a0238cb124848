"""Erasure in the stores outside the database: RAG documents and a gateway's own memory.

The main erasure (:mod:`pilothouse.guard.erase`) scrubs the store and Redis. Two
more places can hold a subject's text: the RAG index (documents whose metadata
names the subject are deleted with their chunks; any chunk still holding an erased
value counts as residue, so the scan fails rather than hiding it) and, in a running
gateway, the in-memory response cache and pseudonym mappings (reachable only
in-process, hence ``POST /admin/privacy/erase``).
"""

from __future__ import annotations

from typing import Any, Protocol

_OWNER_KEYS = ("user", "user_id", "end_user", "owner", "subject")


class ErasableMemory(Protocol):
    """An in-process store that can drop (or, with ``delete=False``, count) entries
    holding any of ``values``."""

    label: str

    def erase_values(self, values: list[str], *, delete: bool = True) -> int: ...


def _holds(text: str, values: list[str]) -> bool:
    return any(v in text for v in values)


async def erase_rag(store: Any, collections: list[str], user: str | None) -> int:
    """Delete the documents (and chunks) whose metadata names ``user``; returns how many."""
    if user is None:
        return 0
    gone = 0
    for name in collections:
        for doc in await store.documents(name):
            meta = doc.metadata or {}
            if any(meta.get(k) == user for k in _OWNER_KEYS) and await store.delete(name, doc.id):
                gone += 1
    return gone


async def rag_residue(store: Any, collections: list[str], values: list[str]) -> int:
    """Chunks (by document) still holding an erased value."""
    hits = 0
    for name in collections:
        for doc in await store.documents(name):
            texts = await store.chunks_of(name, doc.id)
            if _holds(" ".join(texts), values) or _holds(str(doc.metadata), values):
                hits += 1
    return hits
