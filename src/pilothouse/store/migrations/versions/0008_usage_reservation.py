"""Usage records say what a budgeted request reserved and whether its cost went above it.

Revision ID: 0008_usage_reservation
Revises: 0007_key_lifecycle
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_usage_reservation"
down_revision = "0007_key_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("reserved_pico", sa.BigInteger, nullable=True))
        batch.add_column(
            sa.Column(
                "reservation_exceeded",
                sa.Boolean,
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("reservation_exceeded")
        batch.drop_column("reserved_pico")
