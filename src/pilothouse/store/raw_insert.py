"""Idempotent bulk inserts that skip SQLAlchemy's per-row statement machinery.

The usage and trace writers insert thousands of rows a second. Through
``conn.execute(insert, rows)`` SQLAlchemy looks the statement up in its
compile cache and builds a parameter dict per row (``construct_params``) on
the event loop; that was a third of the writers' cost on the request loop.
Here the ``INSERT ... ON CONFLICT DO NOTHING`` is compiled once per engine,
each row becomes a positional tuple through the dialect's own bind processors
(the same conversions SQLAlchemy applies: JSON with the engine's serialiser,
datetimes, booleans), and the tuples go to the driver's ``executemany``
through :meth:`AsyncConnection.exec_driver_sql`, which keeps SQLAlchemy's
transaction and error handling (so the writers' outage detection is unchanged).

Only tables whose defaults are plain scalars qualify: a missing key gets the
column's default or NULL, exactly what the SQLAlchemy insert stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

Row = dict[str, Any]
_Column = tuple[str, Callable[[Any], Any] | None, Any]  # key, bind processor, default


class RawInsert:
    """``INSERT ... ON CONFLICT (key) DO NOTHING`` for one table and dialect."""

    def __init__(self, table: Table, dialect: Dialect, conflict: Sequence[str]) -> None:
        for column in table.c:
            if column.server_default is not None or (
                column.default is not None and not column.default.is_scalar
            ):
                raise ValueError(f"{table.name}.{column.name}: only scalar defaults are supported")
        insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        statement = insert(table).on_conflict_do_nothing(index_elements=list(conflict))
        keys = [column.key for column in table.c]
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        self.sql = str(compiled)
        order = compiled.positiontup
        if order is None:  # a dialect with named parameters: not one the store supports
            raise ValueError(f"{dialect.name}: positional parameters expected")
        self.columns: list[_Column] = []
        for key in order:
            column = table.c[key]
            processor = column.type.dialect_impl(dialect).bind_processor(dialect)
            default = column.default.arg if column.default is not None else None  # type: ignore[attr-defined]
            self.columns.append((key, processor, default))

    def values(self, row: Row) -> tuple[Any, ...]:
        """One row as the driver's positional parameters."""
        return tuple(
            (process(row[key]) if process is not None else row[key]) if key in row else default
            for key, process, default in self.columns
        )

    async def execute(self, conn: AsyncConnection, rows: Sequence[Row]) -> None:
        if rows:
            await conn.exec_driver_sql(self.sql, [self.values(row) for row in rows])
