"""Routing policies: the decision on every usage record (the alias asked for, policy, rule,
reason, degraded, cascade steps).

Revision ID: 0013_route_decisions
Revises: 0011_batches
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_route_decisions"
down_revision = "0011_batches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("route_requested", sa.String(200), nullable=True))
        batch.add_column(sa.Column("route_policy", sa.String(16), nullable=True))
        batch.add_column(sa.Column("route_rule", sa.String(200), nullable=True))
        batch.add_column(sa.Column("route_reason", sa.String(500), nullable=True))
        batch.add_column(
            sa.Column("route_degraded", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("route_steps", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("route_steps")
        batch.drop_column("route_degraded")
        batch.drop_column("route_reason")
        batch.drop_column("route_rule")
        batch.drop_column("route_policy")
        batch.drop_column("route_requested")
