"""Rollouts: the rollout table, shared arm counters, set-once marks; rollout id and arm on
usage records and traces.

Revision ID: 0009_rollouts
Revises: 0008_usage_reservation
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_rollouts"
down_revision = "0008_usage_reservation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("running_target", sa.String(300), nullable=True, unique=True),
        sa.Column("prompt_name", sa.String(200), nullable=True),
        sa.Column("label", sa.String(64), nullable=True),
        sa.Column("baseline_version", sa.Integer, nullable=True),
        sa.Column("candidate_version", sa.Integer, nullable=True),
        sa.Column("alias", sa.String(200), nullable=True),
        sa.Column("candidate_alias", sa.String(200), nullable=True),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("percent", sa.Float, nullable=False),
        sa.Column("steps", sa.JSON, nullable=True),
        sa.Column("step_after", sa.Integer, nullable=True),
        sa.Column("step_index", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sticky", sa.String(8), nullable=False),
        sa.Column("bill_shadow", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(200), nullable=True),
        sa.Column("end_reason", sa.String(2000), nullable=True),
        sa.Column("verdict", sa.JSON, nullable=True),
    )
    op.create_index("ix_rollouts_updated", "rollouts", ["updated_at"])
    op.create_table(
        "rollout_stats",
        sa.Column("rollout_id", sa.String(32), primary_key=True),
        sa.Column("arm", sa.String(16), primary_key=True),
        sa.Column("field", sa.String(120), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_table(
        "rollout_marks",
        sa.Column("rollout_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(120), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
    )
    for table in ("usage_records", "traces"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("rollout_id", sa.String(32), nullable=True))
            batch.add_column(sa.Column("rollout_arm", sa.String(16), nullable=True))
    op.create_index("ix_usage_rollout", "usage_records", ["rollout_id"])


def downgrade() -> None:
    op.drop_index("ix_usage_rollout", "usage_records")
    for table in ("traces", "usage_records"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("rollout_arm")
            batch.drop_column("rollout_id")
    op.drop_table("rollout_marks")
    op.drop_table("rollout_stats")
    op.drop_index("ix_rollouts_updated", "rollouts")
    op.drop_table("rollouts")
