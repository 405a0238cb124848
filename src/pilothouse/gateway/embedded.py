"""An in-process gateway for Python callers (eval runs, notebooks, tests).

Requests go through the full pipeline (auth, limits, routing, ledger) over an
in-memory ASGI transport: no socket, but nothing skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette

from pilothouse.config.schema import Settings
from pilothouse.gateway.app import build_app
from pilothouse.gateway.runtime import Runtime


@dataclass(slots=True)
class EmbeddedGateway:
    app: Starlette
    runtime: Runtime
    client: httpx.AsyncClient
    api_key: str


@contextlib.asynccontextmanager
async def embedded_gateway(
    settings: Settings, *, key_name: str = "embedded", api_key: str | None = None
) -> AsyncIterator[EmbeddedGateway]:
    """Start a gateway in this process; ``client`` talks to it with a fresh key.

    ``client.base_url`` is ``http://pilothouse/v1`` so OpenAI-style paths work as-is.
    """
    runtime = Runtime(settings)
    await runtime.start()
    try:
        app = build_app(settings, runtime=runtime)
        app.state.runtime = runtime
        if api_key is None:
            _record, api_key = await runtime.keys.create({"name": key_name})
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://pilothouse/v1",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(None),  # the gateway enforces its own deadlines
        )
        async with client:
            yield EmbeddedGateway(app, runtime, client, api_key)
    finally:
        await runtime.stop()
