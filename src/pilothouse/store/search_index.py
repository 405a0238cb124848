"""SQLite's full-text index of trace content, built in bulk from a queue.

Migration 0018's trigger queues every stored trace's id in ``trace_search_pending``.
:func:`index_pending` turns the queue into index entries with three set-based
statements: a bookkeeping row per trace whose content is a JSON object (its
FTS5 rowid, stable across VACUUM), that content's string values into the FTS5
table ``trace_search``, and the queue emptied. The trace writer calls it in the
transaction that inserted a batch, so the index is never behind a committed
batch; the console calls it before a search, so traces inserted any other way
are found too.

Every statement is idempotent: a trace already indexed (by an earlier call, or
by 0017's update trigger after an erasure) is skipped, and a trace queued twice
(deleted and stored again before the queue was indexed) is indexed once. The
first statement writes, so the connection holds SQLite's write lock for the
rest: nobody queues or indexes in between, and the ``DELETE`` empties exactly
what was indexed.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# Stored content that is a JSON object (CASE: json_type never sees malformed text).
_OBJECT = "CASE WHEN json_valid(t.content) THEN json_type(t.content) END = 'object'"
# Every string value of the content JSON, space-separated: what FTS5 tokenises.
_TEXT = "(SELECT group_concat(value, ' ') FROM json_tree(t.content) WHERE type = 'text')"
# Each queued trace once (it is queued again if deleted and stored again before indexing).
_QUEUED = "(SELECT DISTINCT trace_id FROM trace_search_pending) AS p"

INDEX_PENDING = (
    "INSERT OR IGNORE INTO trace_search_rows (trace_id, request_id) "
    "SELECT t.trace_id, t.request_id FROM " + _QUEUED + " "
    "JOIN traces AS t ON t.trace_id = p.trace_id WHERE " + _OBJECT,
    "INSERT INTO trace_search (rowid, body) SELECT r.id, " + _TEXT + " "
    "FROM " + _QUEUED + " "
    "JOIN trace_search_rows AS r ON r.trace_id = p.trace_id "
    "JOIN traces AS t ON t.trace_id = p.trace_id "
    "WHERE NOT EXISTS (SELECT 1 FROM trace_search AS s WHERE s.rowid = r.id)",
    "DELETE FROM trace_search_pending",
)
_ANY_PENDING = "SELECT 1 FROM trace_search_pending LIMIT 1"


async def index_pending(conn: AsyncConnection) -> None:
    """Index every queued trace, inside the caller's transaction (SQLite; else nothing)."""
    if conn.dialect.name != "sqlite":
        return
    for statement in INDEX_PENDING:
        await conn.exec_driver_sql(statement)


async def catch_up(engine: AsyncEngine) -> None:
    """Before a search: index what is queued, if anything is (a read when nothing is)."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as conn:
        queued = (await conn.exec_driver_sql(_ANY_PENDING)).first() is not None
    if queued:
        async with engine.begin() as conn:
            await index_pending(conn)
