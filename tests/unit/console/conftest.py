"""A migrated SQLite store, empty or holding the sample data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.store.db import create_engine, migrate
from tests.unit.console.sample import Sample, write_sample


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(f"sqlite:///{tmp_path}/console.db")
    await migrate(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
async def sample(engine: AsyncEngine) -> Sample:
    return await write_sample(engine)
