"""Traces, spans and feedback.

Revision ID: 0003_traces
Revises: 0002_evals
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_traces"
down_revision = "0002_evals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "traces",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("alias", sa.String(200), nullable=True),
        sa.Column("provider", sa.String(200), nullable=True),
        sa.Column("upstream_model", sa.String(200), nullable=True),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("user_id", sa.String(200), nullable=True),
        sa.Column("session_id", sa.String(200), nullable=True),
        sa.Column("feature", sa.String(200), nullable=True),
        sa.Column("team", sa.String(200), nullable=True),
        sa.Column("task_id", sa.String(200), nullable=True),
        sa.Column("prompt_name", sa.String(200), nullable=True),
        sa.Column("prompt_version", sa.String(64), nullable=True),
        sa.Column("duration_ms", sa.Float, nullable=True),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cost_pico", sa.BigInteger, nullable=False),
        sa.Column("cache_hit", sa.Boolean, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=True),
        sa.Column("content", sa.JSON, nullable=True),
    )
    for name, cols in (
        ("ix_traces_created_at", ["created_at"]),
        ("ix_traces_request_id", ["request_id"]),
        ("ix_traces_key_created", ["key_id", "created_at"]),
        ("ix_traces_feature", ["feature"]),
        ("ix_traces_user", ["user_id"]),
        ("ix_traces_team", ["team"]),
        ("ix_traces_task", ["task_id"]),
    ):
        op.create_index(name, "traces", cols)
    op.create_table(
        "spans",
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("span_id", sa.String(16), primary_key=True),
        sa.Column("parent_span_id", sa.String(16), nullable=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("status_message", sa.String(500), nullable=True),
        sa.Column("attributes", sa.JSON, nullable=True),
        sa.Column("events", sa.JSON, nullable=True),
    )
    op.create_index("ix_spans_start", "spans", ["start_ns"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("task_id", sa.String(200), nullable=True),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("success", sa.Boolean, nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("comment", sa.String(2000), nullable=True),
        sa.Column("metadata", sa.JSON, nullable=True),
    )
    op.create_index("ix_feedback_request", "feedback", ["request_id"])
    op.create_index("ix_feedback_task", "feedback", ["task_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("spans")
    op.drop_table("traces")
