"""An in-process gateway for Python callers (eval runs, notebooks, tests).

Requests go through the full pipeline (auth, limits, routing, ledger) over an
in-memory ASGI transport: no socket, but nothing skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from starlette.applications import Starlette

from pilothouse.config.schema import Settings
from pilothouse.gateway.app import build_app
from pilothouse.gateway.runtime import Runtime

# Long enough for the longest eval run; the key is revoked as soon as the run ends.
EMBEDDED_KEY_TTL = timedelta(hours=12)


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
        minted: str | None = None
        if api_key is None:
            # Scoped to the configured aliases, expiring, and revoked on exit: an eval run
            # must not leave an unrestricted key behind in the store.
            spec: dict[str, object] = {
                "name": key_name,
                "expires_at": (datetime.now(UTC) + EMBEDDED_KEY_TTL).isoformat(),
                "metadata": {"created_by": "embedded gateway"},
            }
            if settings.models:
                spec["models"] = sorted(settings.models)
            record, api_key = await runtime.keys.create(spec, actor="embedded")
            minted = record.id
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://pilothouse/v1",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(None),  # the gateway enforces its own deadlines
        )
        try:
            async with client:
                yield EmbeddedGateway(app, runtime, client, api_key)
        finally:
            if minted is not None:
                with contextlib.suppress(Exception):  # expiry still ends it if the store is gone
                    await runtime.keys.revoke(minted, actor="embedded")
    finally:
        await runtime.stop()
