"""Rollout tables on the store's shared ``metadata`` (created by migration 0009_rollouts).

``running_target`` holds the rollout's target while it runs and is NULL
afterwards; its unique index is what makes "one running rollout per label or
alias" hold across replicas without a lock. ``rollout_stats`` is the shared
arm counters when no Redis is configured; ``rollout_marks`` holds values set
once per rollout (a guard's frozen threshold), first writer wins.
``rollout_guard_history`` (migration 0016) is each guard's statistic and boundary
over time: one row per guard per ``rollouts.history_interval_s`` bucket, the
latest evaluation in the bucket winning, so replicas share one series.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, Float, Index, Integer, String, Table

from pilothouse.store.tables import metadata

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(8), nullable=False),  # prompt | alias
    Column("target", String(300), nullable=False),  # prompt:NAME@LABEL or the alias
    Column("running_target", String(300), nullable=True, unique=True),
    Column("prompt_name", String(200), nullable=True),
    Column("label", String(64), nullable=True),
    Column("baseline_version", Integer, nullable=True),
    Column("candidate_version", Integer, nullable=True),
    Column("alias", String(200), nullable=True),
    Column("candidate_alias", String(200), nullable=True),
    Column("mode", String(8), nullable=False),  # canary | ab | shadow
    Column("percent", Float, nullable=False),
    Column("steps", JSON, nullable=True),
    Column("step_after", Integer, nullable=True),
    Column("step_index", Integer, nullable=False, default=0),
    Column("sticky", String(8), nullable=False),
    Column("bill_shadow", Boolean, nullable=False, default=False),
    Column("options", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("ended_by", String(200), nullable=True),
    Column("end_reason", String(2000), nullable=True),
    Column("verdict", JSON, nullable=True),
    Index("ix_rollouts_updated", "updated_at"),
)

rollout_stats = Table(
    "rollout_stats",
    metadata,
    Column("rollout_id", String(32), primary_key=True),
    Column("arm", String(16), primary_key=True),
    Column("field", String(120), primary_key=True),
    Column("value", Float, nullable=False),
)

rollout_marks = Table(
    "rollout_marks",
    metadata,
    Column("rollout_id", String(32), primary_key=True),
    Column("name", String(120), primary_key=True),
    Column("value", JSON, nullable=False),
)

rollout_guard_history = Table(
    "rollout_guard_history",
    metadata,
    Column("rollout_id", String(32), primary_key=True),
    Column("metric", String(120), primary_key=True),
    Column("bucket", Integer, primary_key=True),  # epoch seconds // history_interval_s
    Column("at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),
    Column("samples", JSON, nullable=False),
    Column("statistic", Float, nullable=True),
    Column("boundary", Float, nullable=True),
)
