"""Alembic environment: runs on the connection that ``store.db.migrate`` hands in."""

from __future__ import annotations

from alembic import context

from pilothouse.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via `alembic` CLI without our runner
    raise RuntimeError("run migrations through `pilothouse db upgrade` or `pilothouse serve`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
