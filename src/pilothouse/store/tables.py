"""Table definitions (SQLAlchemy Core: batch inserts on the ledger path stay cheap).

Money is stored as integer pico-USD (1e-12 USD) so sums are exact on SQLite
and PostgreSQL alike; the API renders it as a decimal string.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("models", JSON, nullable=True),
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("model_limits", JSON, nullable=True),
    Column("budget_pico", BigInteger, nullable=True),
    Column("budget_period", String(8), nullable=False, default="total"),
    Column("metadata", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    # Admin principals: admin | operator | viewer | finance (None: an inference-only key).
    Column("role", String(16), nullable=True),
    Column("max_concurrency", Integer, nullable=True),
    # Lifecycle: expiry, rotation grace (the previous secret's hash and until when it works),
    # and the last change, which replicas poll to refresh cached keys.
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("previous_key_hash", String(64), nullable=True, index=True),
    Column("previous_valid_until", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    # Teams and users (limits/scopes.py): a key belongs to a team and optionally a user.
    Column("team_id", String(32), nullable=True, index=True),
    Column("user_id", String(32), nullable=True, index=True),
)


def _scope_columns() -> list[Column[Any]]:
    """The limits a team or a user carries, like a key's (limits/scopes.py)."""
    return [
        Column("models", JSON, nullable=True),
        Column("rpm", Integer, nullable=True),
        Column("tpm", Integer, nullable=True),
        Column("budget_pico", BigInteger, nullable=True),
        Column("budget_period", String(8), nullable=False, default="total"),
        Column("metadata", JSON, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=True, index=True),
    ]


teams = Table(
    "teams",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    *_scope_columns(),
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("team_id", String(32), nullable=True, index=True),
    *_scope_columns(),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("request_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("key_id", String(32), nullable=True),
    Column("endpoint", String(32), nullable=False),
    Column("alias", String(200), nullable=True),
    Column("provider", String(200), nullable=True),
    Column("upstream_model", String(200), nullable=True),
    Column("stream", Boolean, nullable=False, default=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("status", Integer, nullable=False),
    Column("error_type", String(64), nullable=True),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("cached_input_tokens", Integer, nullable=False, default=0),
    Column("estimated", Boolean, nullable=False, default=False),
    Column("cost_pico", BigInteger, nullable=False, default=0),
    Column("latency_ms", Float, nullable=False),
    Column("ttft_ms", Float, nullable=True),
    Column("cache_hit", Boolean, nullable=False, default=False),
    Column("metadata", JSON, nullable=True),
    # Releases: which prompt version and route version produced this answer.
    Column("prompt_name", String(200), nullable=True),
    Column("prompt_version", Integer, nullable=True),
    Column("prompt_label", String(64), nullable=True),
    Column("prompt_hash", String(64), nullable=True),
    Column("route_version", String(64), nullable=True),
    # Budgets: what was reserved, and whether the real cost went above it (budget frozen).
    Column("reserved_pico", BigInteger, nullable=True),
    Column("reservation_exceeded", Boolean, nullable=False, default=False),
    # Rollouts: which rollout and arm (baseline | candidate) served this request.
    Column("rollout_id", String(32), nullable=True),
    Column("rollout_arm", String(16), nullable=True),
    # Routing policies: the decision (routing/policy.py) and, for cascades, each step's cost.
    Column("route_requested", String(200), nullable=True),  # the alias the client asked for
    Column("route_policy", String(16), nullable=True),
    Column("route_rule", String(200), nullable=True),
    Column("route_reason", String(500), nullable=True),
    Column("route_degraded", Boolean, nullable=False, default=False),
    Column("route_steps", JSON, nullable=True),
    # Semantic cache (migration 0014): the tier that answered and the upstream tokens saved.
    Column("cache_kind", String(16), nullable=True),
    Column("cache_tokens_saved", Integer, nullable=True),
    # Migration 0017: what a cache hit's answer cost when it was made (pico-USD saved).
    Column("cache_saved_pico", BigInteger, nullable=True),
    # The team and user the request was charged to (their budgets and limits applied).
    Column("team_id", String(32), nullable=True),
    Column("user_id", String(32), nullable=True),
    Index("ix_usage_created_at", "created_at"),
    Index("ix_usage_key_created", "key_id", "created_at"),
    Index("ix_usage_alias_created", "alias", "created_at"),
    Index("ix_usage_request_id", "request_id"),
    Index("ix_usage_rollout", "rollout_id"),
    Index("ix_usage_team_created", "team_id", "created_at"),
    Index("ix_usage_user_created", "user_id", "created_at"),
)

# One row per request (or per application trace): the filterable summary.
# On SQLite, triggers keep the search index in step with ``content`` (0017's update and
# delete triggers, 0018's insert trigger that queues new traces for store/search_index.py):
# a later migration that rebuilds this table (op.batch_alter_table recreating it) must
# recreate them, or search silently stops seeing new traces.
traces = Table(
    "traces",
    metadata,
    Column("trace_id", String(32), primary_key=True),
    Column("request_id", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("key_id", String(32), nullable=True),
    Column("alias", String(200), nullable=True),
    Column("provider", String(200), nullable=True),
    Column("upstream_model", String(200), nullable=True),
    Column("status", Integer, nullable=True),
    Column("error_type", String(64), nullable=True),
    Column("user_id", String(200), nullable=True),
    Column("session_id", String(200), nullable=True),
    Column("feature", String(200), nullable=True),
    Column("team", String(200), nullable=True),
    Column("task_id", String(200), nullable=True),
    Column("prompt_name", String(200), nullable=True),
    Column("prompt_version", String(64), nullable=True),
    Column("prompt_label", String(64), nullable=True),
    Column("prompt_hash", String(64), nullable=True),
    Column("duration_ms", Float, nullable=True),
    Column("ttft_ms", Float, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("cost_pico", BigInteger, nullable=False, default=0),
    Column("cache_hit", Boolean, nullable=False, default=False),
    Column("metadata", JSON, nullable=True),
    Column("content", JSON, nullable=True),
    Column("rollout_id", String(32), nullable=True),
    Column("rollout_arm", String(16), nullable=True),
    Index("ix_traces_created_at", "created_at"),
    Index("ix_traces_request_id", "request_id"),
    Index("ix_traces_key_created", "key_id", "created_at"),
    Index("ix_traces_feature", "feature"),
    Index("ix_traces_user", "user_id"),
    Index("ix_traces_team", "team"),
    Index("ix_traces_task", "task_id"),
)

# SQLite only (migration 0017): the FTS5 rowid of each searchable trace. The FTS5 table
# ``trace_search(body)``, its triggers and the queue ``trace_search_pending`` (0018) live in
# the migrations; PostgreSQL searches ``traces.content`` through a GIN index instead
# (console/search.py).
trace_search_rows = Table(
    "trace_search_rows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("trace_id", String(32), nullable=False, unique=True),
    Column("request_id", String(64), nullable=True),
)

# Every span of a trace: the gateway's own and those applications send over OTLP.
spans = Table(
    "spans",
    metadata,
    Column("trace_id", String(32), primary_key=True),
    Column("span_id", String(16), primary_key=True),
    Column("parent_span_id", String(16), nullable=True),
    Column("name", String(300), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger, nullable=False),
    Column("status", String(8), nullable=False),
    Column("status_message", String(500), nullable=True),
    Column("attributes", JSON, nullable=True),
    Column("events", JSON, nullable=True),
    Index("ix_spans_start", "start_ns"),
)

# Outcomes reported by applications (POST /v1/feedback), for cost per successful task.
feedback = Table(
    "feedback",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("task_id", String(200), nullable=True),
    Column("key_id", String(32), nullable=True),
    Column("success", Boolean, nullable=True),
    Column("score", Float, nullable=True),
    Column("comment", String(2000), nullable=True),
    Column("metadata", JSON, nullable=True),
    Index("ix_feedback_request", "request_id"),
    Index("ix_feedback_task", "task_id"),
)

# Stored Responses API answers (``store: true``), for GET and ``previous_response_id``.
# ``conversation`` is the chat messages so far, without instructions; only the key that
# created a response can read, continue or delete it.
responses = Table(
    "responses",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("alias", String(200), nullable=False),
    Column("conversation", JSON, nullable=False),
    Column("response", JSON, nullable=False),
    Index("ix_responses_key_created", "key_id", "created_at"),
)
