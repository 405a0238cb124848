"""Shared fixtures: real PostgreSQL and Redis, real gateways on free ports."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

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


def pytest_configure(config: pytest.Config) -> None:
    _share_httpx_default_ssl_context()


def _share_httpx_default_ssl_context() -> None:
    """One verified default SSL context for every httpx client in this process.

    Each ``httpx.Client`` (and every ``httpx.post``, and every ``openai`` client) parses
    certifi's CA bundle: 45-50 ms on a slow VM, which was most of the suite's wall time
    although the tests speak plain HTTP to 127.0.0.1. Only the default (``verify=True``,
    no client certificate) is shared, keyed by the environment that selects its CAs;
    anything else is built as before. Gateways in subprocesses are untouched.
    """
    import httpx._transports.default as transport

    original = transport.create_ssl_context
    shared: dict[tuple[str | None, str | None, bool], Any] = {}

    def create(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is not True or cert is not None:
            return original(verify=verify, cert=cert, trust_env=trust_env)
        key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"), trust_env)
        if key not in shared:
            shared[key] = original(verify=True, cert=None, trust_env=trust_env)
        return shared[key]

    transport.create_ssl_context = create  # type: ignore[assignment]


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
