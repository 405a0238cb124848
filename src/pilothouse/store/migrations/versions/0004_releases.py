"""Releases: admin roles, the audit log, prompt registry, labels, route versions, lineage.

Revision ID: 0004_releases
Revises: 0003_traces
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_releases"
down_revision = "0003_traces"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("role", sa.String(16), nullable=True))
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("prompt_name", sa.String(200), nullable=True))
        batch.add_column(sa.Column("prompt_version", sa.Integer, nullable=True))
        batch.add_column(sa.Column("prompt_label", sa.String(64), nullable=True))
        batch.add_column(sa.Column("prompt_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("route_version", sa.String(64), nullable=True))
    with op.batch_alter_table("traces") as batch:
        batch.add_column(sa.Column("prompt_label", sa.String(64), nullable=True))
        batch.add_column(sa.Column("prompt_hash", sa.String(64), nullable=True))
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(500), nullable=True),
        sa.Column("details", sa.JSON, nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_at", "audit_log", ["at"])
    op.create_index("ix_audit_actor", "audit_log", ["actor"])
    op.create_index("ix_audit_action", "audit_log", ["action"])
    op.create_table(
        "prompts",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "prompt_versions",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=True),
        sa.Column("parent", sa.Integer, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("name", "hash", name="uq_prompt_versions_hash"),
    )
    op.create_table(
        "labels",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("label", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("move_id", sa.String(32), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "label_history",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("reason", sa.String(2000), nullable=True),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=True),
    )
    op.create_index("ix_label_history_name", "label_history", ["name", "label", "at"])
    op.create_table(
        "prompt_approvals",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=True),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_prompt_approvals", "prompt_approvals", ["name", "version", "label"])
    op.create_table(
        "prompt_evidence",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(64), nullable=True),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("suite", sa.String(500), nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("gates", sa.JSON, nullable=True),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_prompt_evidence", "prompt_evidence", ["name", "version"])
    op.create_table(
        "route_versions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("source", sa.String(500), nullable=True),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_route_versions_hash", "route_versions", ["hash"])
    op.create_index("ix_route_versions_at", "route_versions", ["at"])


def downgrade() -> None:
    for table in (
        "route_versions",
        "prompt_evidence",
        "prompt_approvals",
        "label_history",
        "labels",
        "prompt_versions",
        "prompts",
        "audit_log",
    ):
        op.drop_table(table)
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("prompt_hash")
        batch.drop_column("prompt_label")
    with op.batch_alter_table("usage_records") as batch:
        for column in ("route_version", "prompt_hash", "prompt_label", "prompt_version"):
            batch.drop_column(column)
        batch.drop_column("prompt_name")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("role")
