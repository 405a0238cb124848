"""Full-text search over stored prompts and responses, and the metadata ``tags`` filter.

Both are conditions on ``usage_records`` compiled per database: SQLite matches
the FTS5 table ``trace_search`` (migration 0017, fed in bulk by
store/search_index.py: call its ``catch_up`` before searching), PostgreSQL matches the GIN
index on ``to_tsvector('simple', traces.content)``. Only ``traces.content`` is
searched, i.e. what the capture policy stored: with ``redacted`` the original
of a redacted value cannot be found, with ``none`` nothing can.

The viewer role never searches content (console/log_filters.py refuses ``q`` for
it): whether a request matches a word already tells what the request said.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean, String

MAX_QUERY_CHARS = 200
_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """The words of a search (what both tokenisers index); punctuation only separates."""
    return _WORD.findall(text)


def fts5_query(text: str) -> str:
    """Every word, quoted, so FTS5 operators (``NEAR``, ``*``, ``:``) in input are plain text."""
    return " ".join(f'"{w}"' for w in words(text))


class ContentMatch(ColumnElement[bool]):
    """``usage_records.request_id`` names a request whose stored content has every word.

    The words are real bound parameters (traversed for the statement cache key), so a
    cached compiled statement is reused with the new search's values, never the old one's.
    """

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [
        ("request_id", InternalTraversal.dp_clauseelement),
        ("fts5", InternalTraversal.dp_clauseelement),
        ("text", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, request_id: ColumnElement[Any], text: str) -> None:
        self.request_id = request_id
        self.fts5 = bindparam("search_fts5", fts5_query(text), String(), unique=True)
        self.text = bindparam("search_text", text, String(), unique=True)


@compiles(ContentMatch)
def _content_sqlite(element: ContentMatch, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.request_id, **kw)
    param = compiler.process(element.fts5, **kw)
    return (
        f"{column} IN (SELECT r.request_id FROM trace_search_rows AS r WHERE r.id IN "
        f"(SELECT rowid FROM trace_search WHERE trace_search MATCH {param}))"
    )


@compiles(ContentMatch, "postgresql")
def _content_postgres(element: ContentMatch, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.request_id, **kw)
    param = compiler.process(element.text, **kw)
    return (
        f"{column} IN (SELECT s.request_id FROM traces AS s WHERE "
        f"to_tsvector('simple'::regconfig, s.content) @@ "
        f"plainto_tsquery('simple'::regconfig, CAST({param} AS TEXT)))"
    )


class TagMatch(ColumnElement[bool]):
    """The metadata's ``tags`` (a list of strings, or one string) contains ``tag``."""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [
        ("metadata", InternalTraversal.dp_clauseelement),
        ("tag", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, metadata: ColumnElement[Any], tag: str) -> None:
        self.metadata = metadata
        self.tag = bindparam("tag", tag, String(), unique=True)


@compiles(TagMatch)
def _tag_sqlite(element: TagMatch, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.metadata, **kw)
    param = compiler.process(element.tag, **kw)
    return f"EXISTS (SELECT 1 FROM json_each({column}, '$.tags') AS tg WHERE tg.value = {param})"


@compiles(TagMatch, "postgresql")
def _tag_postgres(element: TagMatch, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.metadata, **kw)
    param = compiler.process(element.tag, **kw)
    return f"jsonb_exists(CAST({column} AS JSONB) -> 'tags', CAST({param} AS TEXT))"


def content_match(request_id: ColumnElement[Any], text: str) -> ColumnElement[bool]:
    return ContentMatch(request_id, text)


def tag_match(metadata: ColumnElement[Any], tag: str) -> ColumnElement[bool]:
    return TagMatch(metadata, tag)
