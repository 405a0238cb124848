"""Each rollout guard's statistic and boundary over time, for the console's trend.

Revision ID: 0016_rollout_guard_history
Revises: 0012_teams_users (the chain's head; numbers are not in order)
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_rollout_guard_history"
down_revision = "0012_teams_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollout_guard_history",
        sa.Column("rollout_id", sa.String(32), primary_key=True),
        sa.Column("metric", sa.String(120), primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("samples", sa.JSON, nullable=False),
        sa.Column("statistic", sa.Float, nullable=True),
        sa.Column("boundary", sa.Float, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("rollout_guard_history")
