"""Console: full-text search over stored trace content, and what a cache hit saved in dollars.

Revision ID: 0017_console_search
Revises: 0016_rollout_guard_history
Create Date: 2026-12-02

Search indexes only ``traces.content``, which holds what the capture policy kept
(nothing, redacted text or full text), so a search can never match words the
policy dropped. PostgreSQL: a GIN index on ``to_tsvector('simple', content)``
(string values only). SQLite: an FTS5 table fed by triggers on ``traces``; its
rowids come from ``trace_search_rows`` (an explicit INTEGER PRIMARY KEY, stable
across VACUUM), so retention deletes and privacy erasure remove the text too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_console_search"
down_revision = "0016_rollout_guard_history"
branch_labels = None
depends_on = None

# Stored content that is a JSON object (CASE: json_type never sees malformed text).
_OBJECT = "CASE WHEN json_valid({row}.content) THEN json_type({row}.content) END = 'object'"
# Every string value of the content JSON, space-separated: what FTS5 tokenises.
_TEXT = "(SELECT group_concat(value, ' ') FROM json_tree({row}.content) WHERE type = 'text')"
_ADD = (
    "INSERT INTO trace_search_rows (trace_id, request_id) "
    "SELECT {row}.trace_id, {row}.request_id WHERE " + _OBJECT + "; "
    "INSERT INTO trace_search (rowid, body) "
    "SELECT id, " + _TEXT + " FROM trace_search_rows WHERE trace_id = {row}.trace_id; "
)
_DROP = (
    "DELETE FROM trace_search WHERE rowid IN "
    "(SELECT id FROM trace_search_rows WHERE trace_id = old.trace_id); "
    "DELETE FROM trace_search_rows WHERE trace_id = old.trace_id; "
)
SQLITE = [
    "CREATE TABLE trace_search_rows (id INTEGER PRIMARY KEY, "
    "trace_id VARCHAR(32) NOT NULL UNIQUE, request_id VARCHAR(64))",
    "CREATE INDEX ix_trace_search_rows_request ON trace_search_rows (request_id)",
    "CREATE VIRTUAL TABLE trace_search USING fts5(body)",
    "CREATE TRIGGER trace_search_insert AFTER INSERT ON traces BEGIN "
    + _ADD.format(row="new")
    + "END",
    "CREATE TRIGGER trace_search_delete AFTER DELETE ON traces BEGIN " + _DROP + "END",
    "CREATE TRIGGER trace_search_update AFTER UPDATE OF content, request_id ON traces BEGIN "
    + _DROP
    + _ADD.format(row="new")
    + "END",
    # Traces stored before this migration become searchable too.
    "INSERT INTO trace_search_rows (trace_id, request_id) "
    "SELECT trace_id, request_id FROM traces AS t WHERE " + _OBJECT.format(row="t"),
    "INSERT INTO trace_search (rowid, body) SELECT r.id, "
    + _TEXT.format(row="t")
    + " FROM trace_search_rows r JOIN traces t ON t.trace_id = r.trace_id",
]
POSTGRES = (
    "CREATE INDEX ix_traces_content_search ON traces "
    "USING gin (to_tsvector('simple'::regconfig, content))"
)


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        # What the answer would have cost upstream (pico-USD), for "dollars saved by the cache".
        batch.add_column(sa.Column("cache_saved_pico", sa.BigInteger, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES)
    else:
        for statement in SQLITE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_traces_content_search")
    else:
        for name in ("trace_search_insert", "trace_search_delete", "trace_search_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS trace_search")
        op.execute("DROP TABLE IF EXISTS trace_search_rows")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("cache_saved_pico")
