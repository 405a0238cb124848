"""The ``rag:`` config section (store, collections); frozen and strict like the rest."""

from __future__ import annotations

from typing import Literal

import msgspec

from pilothouse.telemetry.config import parse_duration


class _Frozen(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class RagStoreConfig(_Frozen, frozen=True):
    url: str = "sqlite:///./pilothouse-rag.db"

    def __post_init__(self) -> None:
        if not self.url.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError(f"url must be sqlite:///PATH or postgresql://..., got {self.url!r}")


class ChunkingConfig(_Frozen, frozen=True):
    strategy: Literal["recursive"] = "recursive"
    max_tokens: int = 300
    overlap: int = 40

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise ValueError(f"max_tokens must be >= 16, got {self.max_tokens}")
        if not 0 <= self.overlap < self.max_tokens:
            raise ValueError(f"overlap must be >= 0 and < max_tokens, got {self.overlap}")


class FusionWeights(_Frozen, frozen=True):
    dense: float = 1.0
    keyword: float = 1.0


class SearchConfig(_Frozen, frozen=True):
    mode: Literal["dense", "keyword", "hybrid"] = "hybrid"
    k: int = 8
    rerank: bool | str = False
    weights: FusionWeights = msgspec.field(default_factory=FusionWeights)
    rrf_k: int = 60

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 1000:
            raise ValueError(f"k must be between 1 and 1000, got {self.k}")


class AclConfig(_Frozen, frozen=True):
    default: Literal["deny", "allow"] = "deny"


class FreshnessConfig(_Frozen, frozen=True):
    max_age: str | None = None

    def __post_init__(self) -> None:
        if self.max_age is not None:
            parse_duration(self.max_age)

    @property
    def max_age_s(self) -> int | None:
        return None if self.max_age is None else parse_duration(self.max_age)


class CollectionConfig(_Frozen, frozen=True):
    embedder: str
    chunking: ChunkingConfig = msgspec.field(default_factory=ChunkingConfig)
    search: SearchConfig = msgspec.field(default_factory=SearchConfig)
    acl: AclConfig = msgspec.field(default_factory=AclConfig)
    freshness: FreshnessConfig = msgspec.field(default_factory=FreshnessConfig)


class RagConfig(_Frozen, frozen=True):
    store: RagStoreConfig = msgspec.field(default_factory=RagStoreConfig)
    collections: dict[str, CollectionConfig] = msgspec.field(default_factory=dict)
    # How often the gateway counts stale documents (gauge) and fires the freshness alert.
    freshness_check_interval_s: float = 300.0

    def __post_init__(self) -> None:
        if not 1 <= self.freshness_check_interval_s <= 86_400:
            raise ValueError(
                "freshness_check_interval_s must be between 1 and 86400, "
                f"got {self.freshness_check_interval_s}"
            )
