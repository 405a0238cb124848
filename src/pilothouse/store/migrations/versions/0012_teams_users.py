"""Teams and users as entities: their own limits and budgets; keys and usage name them.

Revision ID: 0012_teams_users
Revises: 0014_semantic_cache (landed first; the chain stays linear)
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012_teams_users"
down_revision = "0014_semantic_cache"
branch_labels = None
depends_on = None


def _limit_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("models", sa.JSON, nullable=True),
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("tpm", sa.Integer, nullable=True),
        sa.Column("budget_pico", sa.BigInteger, nullable=True),
        sa.Column("budget_period", sa.String(8), nullable=False, server_default="total"),
        sa.Column("metadata", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        *_limit_columns(),
    )
    op.create_index("ix_teams_updated_at", "teams", ["updated_at"])
    op.create_table(
        "users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("team_id", sa.String(32), nullable=True),
        *_limit_columns(),
    )
    op.create_index("ix_users_team_id", "users", ["team_id"])
    op.create_index("ix_users_updated_at", "users", ["updated_at"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("team_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("user_id", sa.String(32), nullable=True))
    op.create_index("ix_api_keys_team_id", "api_keys", ["team_id"])
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("team_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("user_id", sa.String(32), nullable=True))
    op.create_index("ix_usage_team_created", "usage_records", ["team_id", "created_at"])
    op.create_index("ix_usage_user_created", "usage_records", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_user_created", table_name="usage_records")
    op.drop_index("ix_usage_team_created", table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("user_id")
        batch.drop_column("team_id")
    op.drop_index("ix_api_keys_user_id", table_name="api_keys")
    op.drop_index("ix_api_keys_team_id", table_name="api_keys")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("user_id")
        batch.drop_column("team_id")
    op.drop_index("ix_users_updated_at", table_name="users")
    op.drop_index("ix_users_team_id", table_name="users")
    op.drop_table("users")
    op.drop_index("ix_teams_updated_at", table_name="teams")
    op.drop_table("teams")
