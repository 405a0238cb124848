"""One request's story: filled in by each stage, read once by ledger, traces and metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pilothouse.limits.budget import Slot
from pilothouse.limits.keys import KeyRecord
from pilothouse.limits.scopes import ScopeRecord
from pilothouse.providers.base import Usage

if TYPE_CHECKING:
    from pilothouse.rag.principal import Principal


@dataclass(slots=True)
class Attempt:
    """One upstream call: which target, how it ended, how long it took."""

    provider: str
    model: str
    outcome: str  # "ok" | "error" | "timeout" | "skipped_open"
    latency_s: float
    error: str | None = None
    status: int | None = None
    started: float = 0.0  # perf_counter at the attempt's start


@dataclass(slots=True)
class RequestContext:
    request_id: str
    endpoint: str
    started: float = field(default_factory=time.perf_counter)
    deadline: float = 0.0
    key: KeyRecord | None = None
    alias: str | None = None
    stream: bool = False
    provider: str | None = None
    upstream_model: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost_pico: int = 0
    status: int = 200
    error_type: str | None = None
    ttft_s: float | None = None
    cache_hit: bool = False
    # Semantic cache (gateway/semantic_stage.py): kind, similarity, entry_id, tokens_saved.
    cache_info: dict[str, Any] | None = None
    # A cache hit: the usage the cached answer had upstream (gateway/cache_savings.py).
    cache_saved: Usage | None = None
    metadata: dict[str, Any] | None = None
    # Set when the request ends (telemetry/metadata_privacy.py): metadata as it may be stored.
    metadata_protected: bool = False
    stored_key_metadata: dict[str, Any] | None = None
    reserved_pico: int = 0
    reserved_tokens: int = 0
    # Teams and users (gateway/scope_admission.py): whose limits applied, which budgets held.
    team: ScopeRecord | None = None
    user: ScopeRecord | None = None
    budget_slots: tuple[Slot, ...] = ()
    # Tracing: W3C ids, wall-clock start, stage marks (perf_counter; 0.0 = not reached).
    trace_id: str = ""
    parent_span_id: str | None = None
    start_ns: int = field(default_factory=time.time_ns)
    admitted_at: float = 0.0
    cache_checked_at: float = 0.0
    request_body: dict[str, Any] | None = None
    response_body: dict[str, Any] | None = None
    # Releases: the prompt version served ({name, version, label, hash, overrides}).
    prompt: dict[str, Any] | None = None
    # Capacity held (gateway/intake.py): released exactly once when the request ends.
    key_slot: bool = False
    gateway_slot: bool = False
    guards: Any = None  # guard.state.GuardState when a guard policy applies
    # Legacy /v1/completions: its completions-only fields (suffix, echo…); None otherwise.
    completion: dict[str, Any] | None = None
    # /v1/responses: its Responses-only fields for targets with a native endpoint; None otherwise.
    responses: dict[str, Any] | None = None
    # Rollouts (gateway/rollout_routing.py): which rollout and arm this request belongs to.
    rollout: Any = None  # rollout_routing.Assignment
    # Routing policies (gateway/route_policy.py): the decision, its rule and reason, degraded.
    route: Any = None  # routing.policy.RouteDecision
    # RAG (rag/trace.py): one record per search this request ran, each becomes a retrieval span.
    retrievals: list[dict[str, Any]] = field(default_factory=list)
    # The end user a signed principal header names (rag/principal.py): narrows RAG groups.
    principal: Principal | None = None

    @property
    def attempt_count(self) -> int:
        return sum(1 for a in self.attempts if a.outcome != "skipped_open")

    @property
    def generates(self) -> bool:
        """Whether this request produces text (chat, completions…; not embeddings, moderations)."""
        return self.endpoint not in ("embeddings", "moderations")

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def wall_ns(self, mark: float) -> int:
        """Convert a perf_counter mark of this request to Unix nanoseconds."""
        return self.start_ns + int((mark - self.started) * 1e9)
