"""Reachability checks and throwaway databases on the machine's real services."""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
from collections.abc import Iterator

PG_ADMIN = [
    "psql",
    "-h",
    "127.0.0.1",
    "-U",
    "postgres",
    "-d",
    "test",
    "-q",
    "-v",
    "ON_ERROR_STOP=1",
]
REDIS_URL = "redis://127.0.0.1:6379/0"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def postgres_available() -> bool:
    return _port_open(5432)


def redis_available() -> bool:
    return _port_open(6379)


def psql(sql: str) -> None:
    subprocess.run([*PG_ADMIN, "-c", sql], check=True, capture_output=True)


def psql_values(database: str, sql: str) -> list[str]:
    """Run a query in ``database``; one value per output line."""
    argv = [*PG_ADMIN[:6], database, "-tAc", sql]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.split()


@contextlib.contextmanager
def temporary_postgres_database() -> Iterator[str]:
    name = f"ph_{secrets.token_hex(5)}"
    psql(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
