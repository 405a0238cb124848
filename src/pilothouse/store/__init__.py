"""Persistence: SQLAlchemy Core tables, Alembic migrations, the async engine."""
