"""The ``rag:`` config section (store, collections); frozen and strict like the rest."""

from __future__ import annotations

from typing import Literal

import msgspec

from pilothouse.secret import Secret
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


class PrincipalConfig(_Frozen, frozen=True):
    """The signed principal header: one key acting for many end users (``rag/principal.py``).

    A JWT signed with ``secret`` carries the end user's ``groups``; they narrow
    the key's groups. Without ``secret`` the feature is off and the header is refused.
    """

    header: str = "x-pilothouse-principal"
    secret: Secret | None = None
    # Tokens must be short-lived: an ``exp`` further than this in the future is refused.
    max_age_s: int = 300
    # Shared-secret (HMAC) algorithms only: the secret above is what signs and verifies.
    algorithms: list[Literal["HS256", "HS384", "HS512"]] = msgspec.field(
        default_factory=lambda: ["HS256"]
    )

    def __post_init__(self) -> None:
        name = self.header.strip().lower()
        if not name or not all(c.isalnum() or c == "-" for c in name):
            raise ValueError(f"header must be an HTTP header name, got {self.header!r}")
        if name in ("authorization", "x-pilothouse-metadata"):
            raise ValueError(f"header {self.header!r} is already used by the gateway")
        if not 1 <= self.max_age_s <= 86_400:
            raise ValueError(f"max_age_s must be between 1 and 86400, got {self.max_age_s}")
        if not self.algorithms:
            raise ValueError("algorithms must list at least one algorithm")

    @property
    def enabled(self) -> bool:
        return self.secret is not None


class RagConfig(_Frozen, frozen=True):
    store: RagStoreConfig = msgspec.field(default_factory=RagStoreConfig)
    principal: PrincipalConfig = msgspec.field(default_factory=PrincipalConfig)
    collections: dict[str, CollectionConfig] = msgspec.field(default_factory=dict)
    # How often the gateway counts stale documents (gauge) and fires the freshness alert.
    freshness_check_interval_s: float = 300.0

    def __post_init__(self) -> None:
        if not 1 <= self.freshness_check_interval_s <= 86_400:
            raise ValueError(
                "freshness_check_interval_s must be between 1 and 86400, "
                f"got {self.freshness_check_interval_s}"
            )
