"""Console tables (migration 0015): signed-in sessions and the console's signing secret."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, String, Table, Text

from pilothouse.store.tables import metadata

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("digest", String(64), primary_key=True),  # SHA-256 of the cookie token
    Column("data", Text, nullable=False),  # principal and CSRF token, JSON
    Column("created_at", Float, nullable=False),  # wall-clock seconds
    Column("seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),  # the absolute timeout
    Index("ix_console_sessions_expires_at", "expires_at"),
)

console_secrets = Table(
    "console_secrets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Text, nullable=False),
)
