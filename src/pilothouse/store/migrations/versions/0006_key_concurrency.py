"""Per-key in-flight cap (``max_concurrency``), so one key's stalled uploads cannot starve others.

Revision ID: 0006_key_concurrency
Revises: 0005_responses
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_key_concurrency"
down_revision = "0005_responses"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("max_concurrency", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("max_concurrency")
