"""Stored Responses API answers.

Revision ID: 0005_responses
Revises: 0004_releases
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_responses"
down_revision = "0004_releases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alias", sa.String(200), nullable=False),
        sa.Column("conversation", sa.JSON, nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
    )
    op.create_index("ix_responses_key_created", "responses", ["key_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_responses_key_created", table_name="responses")
    op.drop_table("responses")
