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


# The English stop words PostgreSQL's `english` text-search configuration drops (Snowball's
# list): the pgvector engine never matched them, and the SQLite engine now skips them too,
# so "how do I read a file" asks for `read`/`file` instead of ranking every chunk with "a".
STOP_WORDS = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his
    himself she her hers herself it its itself they them their theirs themselves what which
    who whom this that these those am is are was were be been being have has had having do
    does did doing a an the and but if or because as until while of at by for with about
    against between into through during before after above below to from up down in out on
    off over under again further then once here there when where why how all any both each
    few more most other some such no nor not only own same so than too very s t can will
    just don should now""".split()  # noqa: SIM905 - readable as prose
)


def keyword_terms(query: str) -> list[str]:
    """Alphanumeric terms of a query without stop words (all of them if nothing else is left);
    engines build their own OR-query from them."""
    import re

    terms = [t for t in re.findall(r"[A-Za-z0-9]+", query.lower()) if t]
    return ([t for t in terms if t not in STOP_WORDS] or terms)[:64]
