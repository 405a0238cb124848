"""The index interface both engines implement, and the records they hold.

Every write of a document version happens in one transaction (document row,
chunks, vectors, keyword entries), so readers see the old version until the
new one is complete. Every read takes the caller's ACL groups and applies
them inside the query; ``groups=None`` means an admin (reads everything).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
Scalar = str | int | float | bool
# metadata key -> the values it may take (one value: equality; several: any of them);
# keys are ANDed. Engines apply it inside the index query, like the ACL filter.
MetadataFilter = dict[str, list[Scalar]]


def parse_filter(raw: Any) -> MetadataFilter | None:
    """Validate a search ``filter`` (``{"key": value | [values]}``) into a MetadataFilter."""
    from pilothouse.errors import InvalidRequestError

    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequestError(
            '`filter` must be an object of metadata keys to values, e.g. {"team": "eng"}',
            param="filter",
        )
    out: MetadataFilter = {}
    for key, value in raw.items():
        values = value if isinstance(value, list) else [value]
        if not key or '"' in key or "\\" in key or not values or len(values) > 100:
            raise InvalidRequestError(
                f"`filter.{key}` needs a key without quotes or backslashes and 1 to 100 values",
                param="filter",
            )
        for v in values:
            if not isinstance(v, str | int | float | bool):
                raise InvalidRequestError(
                    f"`filter.{key}` values must be strings, numbers or booleans",
                    param=f"filter.{key}",
                )
        out[str(key)] = list(values)
    return out or None


@dataclass(slots=True)
class DocumentRecord:
    id: str
    content_hash: str
    title: str | None = None
    source: str | None = None
    acl: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    embedder: str = ""
    embedder_version: int = 1
    indexed_at: float = 0.0
    source_mtime: float | None = None
    bytes: int = 0
    chunks: int = 0


@dataclass(slots=True)
class ChunkRecord:
    chunk_id: str
    ordinal: int
    text: str
    vector: Vector


@dataclass(slots=True)
class Hit:
    document_id: str
    chunk_id: str
    score: float
    text: str
    title: str | None
    source: str | None
    metadata: dict[str, Any]


@dataclass(slots=True)
class CollectionState:
    name: str
    embedder: str
    embedder_version: int
    dimensions: int
    last_ingest: float | None


class RagStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def collection(self, name: str) -> CollectionState | None: ...

    async def set_collection(self, state: CollectionState) -> None: ...

    async def document(self, collection: str, doc_id: str) -> DocumentRecord | None: ...

    async def documents(self, collection: str) -> list[DocumentRecord]: ...

    async def put(
        self, collection: str, doc: DocumentRecord, chunks: list[ChunkRecord]
    ) -> None: ...

    async def delete(self, collection: str, doc_id: str) -> bool: ...

    async def dense(
        self,
        collection: str,
        vector: Vector,
        k: int,
        groups: list[str] | None,
        where: MetadataFilter | None = None,
    ) -> list[Hit]: ...

    async def keyword(
        self,
        collection: str,
        query: str,
        k: int,
        groups: list[str] | None,
        where: MetadataFilter | None = None,
    ) -> list[Hit]: ...

    async def chunks_of(self, collection: str, doc_id: str) -> list[str]: ...

    async def contains_text(self, collection: str, doc_id: str) -> int: ...

    async def stats(self, collection: str) -> dict[str, Any]: ...


def open_store(url: str) -> RagStore:
    if url.startswith("sqlite://"):
        from pilothouse.rag.store_sqlite import SqliteRagStore

        return SqliteRagStore(url.removeprefix("sqlite:///"))
    from pilothouse.rag.store_pg import PgRagStore

    return PgRagStore(url)


def keyword_terms(query: str) -> list[str]:
    """Alphanumeric terms of a query (engines build their own OR-query from them)."""
    import re

    return [t for t in re.findall(r"[A-Za-z0-9]+", query.lower()) if t][:64]
