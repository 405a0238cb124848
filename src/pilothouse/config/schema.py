"""The configuration schema: frozen msgspec structs, unknown keys rejected.

Provider sections are kept as raw mappings here and validated by the
provider's own config struct (see ``providers.base``), so adding a provider
never touches this file.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from pilothouse.batches.config import BatchesConfig
from pilothouse.costs.config import CostsConfig
from pilothouse.guard.config import GuardPolicy
from pilothouse.guard.redact import RedactionConfig
from pilothouse.inputs import (
    DEFAULT_MAX_JSON_DEPTH,
    DEFAULT_MAX_METADATA_BYTES,
    HARD_MAX_JSON_DEPTH,
)
from pilothouse.rag.config import RagConfig
from pilothouse.rollout.config import RolloutsConfig
from pilothouse.routing.config import DegradeConfig, RoutingPolicy
from pilothouse.secret import Secret as Secret  # re-exported: the loader and sections use it
from pilothouse.telemetry.config import SLOSettings

JsonDepth = Annotated[int, msgspec.Meta(ge=2, le=HARD_MAX_JSON_DEPTH)]
GcThreshold = Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]


class _Frozen(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base for every config section: immutable, strict about keys."""


class AuthThrottleConfig(_Frozen, frozen=True):
    """Failed authentication, per client address and per principal tried (limits/auth_throttle)."""

    enabled: bool = True
    max_failures: Annotated[int, msgspec.Meta(ge=1)] = 10  # free failures per window
    window_s: Annotated[float, msgspec.Meta(gt=0)] = 300.0  # counts restart after this quiet
    backoff_base_s: Annotated[float, msgspec.Meta(gt=0)] = 1.0  # first block; doubles each time
    backoff_max_s: Annotated[float, msgspec.Meta(gt=0)] = 300.0


class ServerConfig(_Frozen, frozen=True):
    host: str = "127.0.0.1"
    port: int = 4000
    admin_key: Secret | None = None
    # Accept literal secrets in the file (development only; start-up logs a loud warning).
    allow_literal_secrets: bool = False
    max_in_flight: int = 512
    max_body_bytes: int = 4 * 1024 * 1024
    # Slow-upload defence (gateway/intake.py): whole-body read deadline, header limits.
    body_timeout_s: float = 30.0
    max_header_count: int = 100
    max_header_bytes: int = 32 * 1024
    workers: int = 1
    # --workers N: how long a worker may take to start or answer the supervisor's ping before
    # it is killed and replaced (uvicorn's default of 5 s kills every worker on a busy host).
    worker_healthcheck_s: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 60
    sse_keepalive_s: float = 15.0
    drain_timeout_s: float = 30.0
    # SIGTERM: keep serving this long with /readyz answering 503, so a load balancer's
    # health check takes the replica out before it stops accepting (0 = stop at once).
    drain_delay_s: float = 0.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Client JSON (bodies, metadata header, feedback, OTLP): nesting and metadata size.
    max_json_depth: JsonDepth = DEFAULT_MAX_JSON_DEPTH
    max_metadata_bytes: Annotated[int, msgspec.Meta(ge=64)] = DEFAULT_MAX_METADATA_BYTES
    # Failed authentication on every route that takes a key (/v1/*, /admin/*, console login).
    auth_throttle: AuthThrottleConfig = msgspec.field(default_factory=AuthThrottleConfig)
    # Cyclic-GC thresholds set at start (gc.set_threshold). Python's 700 runs a young
    # collection every few dozen requests and full ones every few seconds, each a pause
    # of 1-50 ms at load; almost everything a request allocates is freed by reference
    # counting, so a larger first threshold makes pauses rare (docs/benchmarks.md).
    gc_threshold: tuple[GcThreshold, GcThreshold, GcThreshold] = (20_000, 10, 10)


class StoreConfig(_Frozen, frozen=True):
    url: str = "sqlite:///./pilothouse.db"
    migrate: bool = True
    spool_path: str = "./pilothouse-spool.jsonl"
    flush_interval_s: float = 0.2
    batch_size: int = 200
    queue_size: int = 100_000
    # /readyz reports a writer "stalled" after this long with work queued and no progress.
    writer_stall_s: float = 30.0
    # Write-ahead journal of queued usage rows next to the spool, so a SIGKILL loses none
    # (store/journal.py); costs one write() per request.
    journal: bool = True
    # true: usage and trace writers run on a dedicated thread with their own event loop
    # and engine (store/writer_thread.py), so the request loop only enqueues. Off by
    # default: on one shared core it did not lower the tail (docs/benchmarks.md).
    # An in-memory SQLite store always writes on the request loop.
    writer_thread: bool = False


class RedisConfig(_Frozen, frozen=True):
    url: str | None = None
    prefix: str = "pilothouse:"


class BreakerConfig(_Frozen, frozen=True):
    failure_threshold: int = 5
    error_rate: float = 0.5
    window: int = 20
    min_calls: int = 10
    cooldown_s: float = 30.0


class RoutingConfig(_Frozen, frozen=True):
    backoff_base_s: float = 0.25
    backoff_max_s: float = 8.0
    retry_after_cap_s: float = 10.0
    timeout_s: float = 600.0
    breaker: BreakerConfig = msgspec.field(default_factory=BreakerConfig)
    # The alias /v1/moderations uses when a request names no `model`.
    moderation_model: str | None = None


class TargetConfig(_Frozen, frozen=True):
    provider: str
    model: str
    max_output_tokens: int = 4096
    weight: Annotated[float, msgspec.Meta(ge=0)] = 1.0  # `weighted` routing
    # What the target serves (tools, vision, json_schema…); None: everything (`cost` routing).
    capabilities: list[str] | None = None


class SemanticCacheConfig(_Frozen, frozen=True):
    """``models.<alias>.cache.semantic`` (docs/cache.md): answers by meaning, gated."""

    embedder: str  # an alias that serves embeddings (checked at start-up)
    threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.92
    scope: Literal["key", "team", "global"] = "key"  # always inside one tenant
    verifier: str | None = None  # a registered verifier plugin (cache/gate.py)
    # Requests with temperature > 0 ask for variety; cache them only when this is set.
    allow_nonzero_temperature: bool = False
    max_entries: Annotated[int, msgspec.Meta(ge=1)] = 10_000  # in memory; per partition in Redis


class AliasCacheConfig(_Frozen, frozen=True):
    ttl_s: float = 300.0
    semantic: SemanticCacheConfig | None = None


class ModelConfig(_Frozen, frozen=True):
    # May be empty only when `routing.strategy` picks other aliases (rules, cascade).
    targets: list[TargetConfig] = msgspec.field(default_factory=list)
    retries: int = 0
    timeout_s: float | None = None
    cache: AliasCacheConfig | None = None
    breaker: BreakerConfig | None = None
    guards: str | None = None  # name of a policy in the top-level `guards:` section
    # /v1/completions on a target without a completions endpoint: translate to chat (opt-in).
    completions_from_chat: bool = False
    routing: RoutingPolicy | None = None  # docs/routing.md
    degrade: DegradeConfig | None = None


class CacheConfig(_Frozen, frozen=True):
    backend: Literal["memory", "redis"] = "memory"
    max_entries: int = 10_000


class PriceConfig(_Frozen, frozen=True):
    """USD per one million tokens."""

    input: Decimal = Decimal(0)
    output: Decimal = Decimal(0)
    cached_input: Decimal | None = None


class ContentBounds(_Frozen, frozen=True):
    """Upper bounds on the prompt tokens one media content part can cost (budget reservations)."""

    image_tokens: int = 25_501
    audio_tokens: int = 2_000
    file_tokens: int = 200_000

    def __post_init__(self) -> None:
        for name in ("image_tokens", "audio_tokens", "file_tokens"):
            if not 0 <= getattr(self, name) <= 10_000_000:
                raise ValueError(f"{name} must be between 0 and 10000000")


class LimitsConfig(_Frozen, frozen=True):
    default_output_estimate: int = 256
    dev_key_name: str = "dev"
    # Budget reservations are leases: a replica that dies mid-request frees them after this.
    reservation_lease_s: float = 60.0
    # In-flight requests per key and process (a key's own `max_concurrency` wins); null: none.
    max_concurrency_per_key: int | None = 64
    # Per provider type (openai, azure, anthropic, ...); defaults in docs/costs.md.
    content_bounds: dict[str, ContentBounds] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.05 <= self.reservation_lease_s <= 86_400:
            raise ValueError(
                "reservation_lease_s must be between 0.05 and 86400, "
                f"got {self.reservation_lease_s}"
            )


class TelemetryConfig(_Frozen, frozen=True):
    """Traces: what content is kept, where it goes, how long it stays."""

    traces: bool = True
    capture_content: Literal["none", "redacted", "full"] = "redacted"
    retention_days: int = 30
    otlp_endpoint: str | None = None
    otlp_headers: dict[str, Secret] = msgspec.field(default_factory=dict)
    queue_size: int = 20_000
    flush_interval_s: float = 0.5
    redaction: RedactionConfig = msgspec.field(default_factory=RedactionConfig)
    metrics_multiprocess_dir: str | None = None
    # Traces spooled while the store is down (default: next to store.spool_path), bounded.
    spool_path: str | None = None
    spool_max_bytes: int = 64 * 1024 * 1024


class LabelPolicy(_Frozen, frozen=True):
    """What a version needs before this label may point at it (``releases.labels``)."""

    requires: list[Literal["evals", "staging", "approval"]] = msgspec.field(default_factory=list)
    approvals: int = 1
    max_evidence_age: str | None = None  # e.g. 7d, 12h

    def __post_init__(self) -> None:
        # Checked at load: a typo here must stop start-up, not fail the first promotion.
        if self.approvals < 1:
            raise ValueError(f"approvals must be at least 1, got {self.approvals}")
        age = self.max_evidence_age
        if age is not None and not re.fullmatch(r"\s*[1-9]\d*\s*[smhdw]\s*", age):
            raise ValueError(f"max_evidence_age must look like 7d, 12h, 30m or 2w; got {age!r}")


class ReleasesConfig(_Frozen, frozen=True):
    labels: dict[str, LabelPolicy] = msgspec.field(default_factory=dict)


class PrivacyConfig(_Frozen, frozen=True):
    """Deployment-wide guard settings: the pseudonym secret and where mappings live."""

    pseudonym_secret: Secret | None = None  # per deployment; random per process when unset
    mapping_backend: Literal["memory", "redis"] = "memory"
    mapping_ttl_s: float = 3600.0
    worker_threads: int = 2
    worker_queue: int = 64
    offload_chars: int = 4096  # texts longer than this are analysed in a worker thread


class Settings(_Frozen, frozen=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    redis: RedisConfig = msgspec.field(default_factory=RedisConfig)
    routing: RoutingConfig = msgspec.field(default_factory=RoutingConfig)
    cache: CacheConfig = msgspec.field(default_factory=CacheConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    providers: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    models: dict[str, ModelConfig] = msgspec.field(default_factory=dict)
    prices: dict[str, PriceConfig] = msgspec.field(default_factory=dict)
    telemetry: TelemetryConfig = msgspec.field(default_factory=TelemetryConfig)
    slo: SLOSettings = msgspec.field(default_factory=SLOSettings)
    costs: CostsConfig = msgspec.field(default_factory=CostsConfig)
    rag: RagConfig = msgspec.field(default_factory=RagConfig)
    batches: BatchesConfig = msgspec.field(default_factory=BatchesConfig)
    # Validated by the loader with the evals' own parser (same scorer syntax as suites).
    online_eval: dict[str, Any] = msgspec.field(default_factory=dict)
    releases: ReleasesConfig = msgspec.field(default_factory=ReleasesConfig)
    rollouts: RolloutsConfig = msgspec.field(default_factory=RolloutsConfig)
    guards: dict[str, GuardPolicy] = msgspec.field(default_factory=dict)
    privacy: PrivacyConfig = msgspec.field(default_factory=PrivacyConfig)
    # Filled by the loader: each provider's validated config struct, by name.
    provider_configs: dict[str, Any] = msgspec.field(default_factory=dict)
    source: str = "<embedded default>"
