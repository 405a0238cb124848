"""Table definitions (SQLAlchemy Core: batch inserts on the ledger path stay cheap).

Money is stored as integer pico-USD (1e-12 USD) so sums are exact on SQLite
and PostgreSQL alike; the API renders it as a decimal string.
"""

from __future__ import annotations

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
    Index("ix_usage_created_at", "created_at"),
    Index("ix_usage_key_created", "key_id", "created_at"),
    Index("ix_usage_alias_created", "alias", "created_at"),
    Index("ix_usage_request_id", "request_id"),
)
