"""Eval runs, case results, the result cache, the review queue and online scores.

Revision ID: 0002_evals
Revises: 0001_core
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_evals"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("suite_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("gates_passed", sa.Boolean, nullable=True),
        sa.Column("baseline_id", sa.String(40), nullable=True),
        sa.Column("info", sa.JSON, nullable=False),
        sa.Column("summary", sa.JSON, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_eval_runs_suite_started", "eval_runs", ["suite", "started_at"])
    op.create_table(
        "eval_results",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("case_id", sa.String(200), nullable=False),
        sa.Column("repeat", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("cost_pico", sa.BigInteger, nullable=True),
        sa.Column("case", sa.JSON, nullable=False),
        sa.Column("sample", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("run_id", "case_id", "repeat", name="uq_eval_results_case"),
    )
    op.create_index("ix_eval_results_run", "eval_results", ["run_id"])
    op.create_table(
        "eval_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "eval_review",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("case_id", sa.String(200), nullable=False),
        sa.Column("repeat", sa.Integer, nullable=False),
        sa.Column("scorer", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("label", sa.String(32), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("run_id", "case_id", "repeat", "scorer", name="uq_eval_review_item"),
    )
    op.create_index("ix_eval_review_status", "eval_review", ["status", "created_at"])
    op.create_table(
        "eval_online_scores",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("alias", sa.String(200), nullable=True),
        sa.Column("scorer", sa.String(200), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("passed", sa.Boolean, nullable=True),
        sa.Column("label", sa.String(64), nullable=True),
        sa.Column("explanation", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_eval_online_request", "eval_online_scores", ["request_id"])
    op.create_index("ix_eval_online_alias_created", "eval_online_scores", ["alias", "created_at"])


def downgrade() -> None:
    for index, table in (
        ("ix_eval_online_alias_created", "eval_online_scores"),
        ("ix_eval_online_request", "eval_online_scores"),
        ("ix_eval_review_status", "eval_review"),
        ("ix_eval_results_run", "eval_results"),
        ("ix_eval_runs_suite_started", "eval_runs"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("eval_online_scores", "eval_review", "eval_cache", "eval_results", "eval_runs"):
        op.drop_table(table)
