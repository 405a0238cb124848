"""Eval tables, on the store's shared ``metadata`` (created by migration 0002_evals).

Runs and case results are stored as JSON documents next to the few columns
that queries filter on: the record types evolve with the harness, the
queries do not.
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
    String,
    Table,
    Text,
    UniqueConstraint,
)

from pilothouse.store.tables import metadata

eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("suite", String(200), nullable=False),
    Column("suite_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("gates_passed", Boolean, nullable=True),
    Column("baseline_id", String(40), nullable=True),
    Column("info", JSON, nullable=False),
    Column("summary", JSON, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_eval_runs_suite_started", "suite", "started_at"),
)

eval_results = Table(
    "eval_results",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("run_id", String(40), nullable=False),
    Column("case_id", String(200), nullable=False),
    Column("repeat", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("cost_pico", BigInteger, nullable=True),
    Column("case", JSON, nullable=False),
    Column("sample", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("run_id", "case_id", "repeat", name="uq_eval_results_case"),
    Index("ix_eval_results_run", "run_id"),
)

eval_cache = Table(
    "eval_cache",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("value", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

eval_review = Table(
    "eval_review",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("run_id", String(40), nullable=False),
    Column("case_id", String(200), nullable=False),
    Column("repeat", Integer, nullable=False),
    Column("scorer", String(200), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("label", String(32), nullable=True),
    Column("note", Text, nullable=True),
    Column("payload", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("labelled_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("run_id", "case_id", "repeat", "scorer", name="uq_eval_review_item"),
    Index("ix_eval_review_status", "status", "created_at"),
)

eval_online_scores = Table(
    "eval_online_scores",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("request_id", String(64), nullable=False),
    Column("alias", String(200), nullable=True),
    Column("scorer", String(200), nullable=False),
    Column("value", Float, nullable=True),
    Column("passed", Boolean, nullable=True),
    Column("label", String(64), nullable=True),
    Column("explanation", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_eval_online_request", "request_id"),
    Index("ix_eval_online_alias_created", "alias", "created_at"),
)
