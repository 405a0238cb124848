"""Key lifecycle: expiry, rotation with a grace period, and a change stamp for replicas.

Revision ID: 0007_key_lifecycle
Revises: 0006_key_concurrency
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_key_lifecycle"
down_revision = "0006_key_concurrency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("previous_key_hash", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("previous_valid_until", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_api_keys_previous_key_hash", "api_keys", ["previous_key_hash"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_previous_key_hash", table_name="api_keys")
    with op.batch_alter_table("api_keys") as batch:
        for column in ("updated_at", "previous_valid_until", "previous_key_hash", "expires_at"):
            batch.drop_column(column)
