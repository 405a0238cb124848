"""Semantic cache: which cache tier answered (hit | semantic) and the upstream tokens saved.

Revision ID: 0014_semantic_cache
Revises: 0015_console_sessions
Create Date: 2026-12-02

The number is the one issue 15 reserved; it follows the head at the time it
landed (0015_console_sessions) so the chain stays linear.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_semantic_cache"
down_revision = "0015_console_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("cache_kind", sa.String(16), nullable=True))
        batch.add_column(sa.Column("cache_tokens_saved", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("cache_tokens_saved")
        batch.drop_column("cache_kind")
