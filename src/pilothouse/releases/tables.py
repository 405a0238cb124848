"""Release tables on the store's shared ``metadata`` (created by migration 0004_releases).

Prompt versions are immutable rows identified by the SHA-256 of their
canonical content; labels point at a version and every move is a history
row; route versions record each distinct ``models`` section a gateway ran.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from pilothouse.store.tables import metadata

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(500), nullable=True),
    Column("details", JSON, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_at", "at"),
    Index("ix_audit_actor", "actor"),
    Index("ix_audit_action", "action"),
)

prompts = Table(
    "prompts",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
)

prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("content", JSON, nullable=False),
    Column("author", String(200), nullable=False),
    Column("reason", String(2000), nullable=True),
    Column("parent", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("name", "hash", name="uq_prompt_versions_hash"),
)

labels = Table(
    "labels",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("label", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("move_id", String(32), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(200), nullable=False),
)

label_history = Table(
    "label_history",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("label", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # move | delete
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("actor", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reason", String(2000), nullable=True),
    Column("forced", Boolean, nullable=False, default=False),
    Column("evidence", JSON, nullable=True),
    Index("ix_label_history_name", "name", "label", "at"),
)

prompt_approvals = Table(
    "prompt_approvals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("label", String(64), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", String(2000), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_prompt_approvals", "name", "version", "label"),
)

prompt_evidence = Table(
    "prompt_evidence",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("label", String(64), nullable=True),
    Column("run_id", String(40), nullable=False),
    Column("suite", String(500), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("gates", JSON, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_prompt_evidence", "name", "version"),
)

route_versions = Table(
    "route_versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("hash", String(64), nullable=False),
    Column("models", JSON, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("source", String(500), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_route_versions_hash", "hash"),
    Index("ix_route_versions_at", "at"),
)
