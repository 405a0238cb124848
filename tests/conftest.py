"""Shared fixtures: real PostgreSQL and Redis, real gateways on free ports."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import settings

from tests.support.services import (
    REDIS_URL,
    postgres_available,
    redis_available,
    temporary_postgres_database,
)

REQUIRE = os.environ.get("PILOTHOUSE_REQUIRE_SERVICES") == "1"

# CI explores a fixed, seeded set of examples so a rare counterexample cannot make a landing
# depend on luck; local runs keep exploring new examples (and remember failures).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


def _need(available: bool, what: str) -> None:
    if available:
        return
    if REQUIRE:
        pytest.fail(f"{what} is not reachable and PILOTHOUSE_REQUIRE_SERVICES=1")
    pytest.skip(f"{what} is not reachable")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    _need(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    return "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database per test (dropped afterwards)."""
    with temporary_postgres_database() as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    _need(redis_available(), "Redis at 127.0.0.1:6379")
    yield REDIS_URL


@pytest.fixture
def redis_prefix() -> str:
    """A unique key prefix so tests sharing the Redis server never see each other."""
    return f"phtest:{secrets.token_hex(4)}:"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/pilothouse.db"
    else:
        request.getfixturevalue("postgres_server")
        with temporary_postgres_database() as url:
            yield url


@pytest.fixture
async def anyio_backend() -> AsyncIterator[str]:
    yield "asyncio"
