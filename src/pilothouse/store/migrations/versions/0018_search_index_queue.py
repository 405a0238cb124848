"""SQLite: feed the console's search index in bulk, not from a trigger per stored trace.

Revision ID: 0018_search_index_queue
Revises: 0017_console_search
Create Date: 2026-12-03

0017's insert trigger parsed every trace's content three times and inserted it into
FTS5 one row at a time: ~80-110 us of SQLite work per traced request, on the
gateway's own core with the default store (benchmarks/trace_insert.py). Now the
trigger only queues the trace id in ``trace_search_pending``; whoever writes traces
(the trace writer, after each batch, in the same transaction) or searches them
(the console, before a query) indexes the queue with three set-based statements
(``pilothouse.store.search_index``). Any insert path still ends up searchable, so
traces a tool or a test inserts directly are found too. The update and delete
triggers of 0017 are unchanged: they fire only on erasure and retention.
PostgreSQL is untouched (its GIN index needs no help).
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0018_search_index_queue"
down_revision = "0017_console_search"
branch_labels = None
depends_on = None

_0017 = importlib.import_module("pilothouse.store.migrations.versions.0017_console_search")
QUEUE_TRIGGER = (
    "CREATE TRIGGER trace_search_insert AFTER INSERT ON traces "
    # No content (capture_content: none stores JSON null): nothing to search, nothing to queue.
    "WHEN new.content IS NOT NULL AND new.content != 'null' BEGIN "
    "INSERT INTO trace_search_pending (trace_id) VALUES (new.trace_id); END"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        return
    op.execute("CREATE TABLE trace_search_pending (trace_id VARCHAR(32) NOT NULL)")
    op.execute("DROP TRIGGER trace_search_insert")
    op.execute(QUEUE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        return
    from pilothouse.store.search_index import INDEX_PENDING

    for statement in INDEX_PENDING:  # what is queued becomes searchable before the queue goes
        op.execute(statement)
    op.execute("DROP TRIGGER trace_search_insert")
    op.execute(next(s for s in _0017.SQLITE if s.startswith("CREATE TRIGGER trace_search_insert")))
    op.execute("DROP TABLE trace_search_pending")
