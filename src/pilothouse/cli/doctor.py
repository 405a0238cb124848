"""``pilothouse doctor``: can this config serve? Store, migrations and Redis, checked live."""

from __future__ import annotations

import time

import httpx
from redis.asyncio import Redis
from sqlalchemy import text

from pilothouse.cli.common import console
from pilothouse.config.schema import Settings
from pilothouse.store.db import create_engine, pending_migrations, redact_url


def _line(ok: bool, what: str, detail: str) -> bool:
    mark = "[green]ok[/]  " if ok else "[red]FAIL[/]"
    console.print(f"{mark} {what}: {detail}", highlight=False)
    return ok


async def _probe_upstream(name: str, config: object) -> bool:
    """GET ``<base_url>/models`` (the OpenAI-style listing) and time it.

    Serve starts without an upstream, then fails every request: doctor says so first.
    Only a refused connection, a timeout, a 5xx or refused credentials fail the check.
    """
    base = str(getattr(config, "base_url", "")).rstrip("/")
    headers = {}
    secret = getattr(config, "api_key", None)
    if secret is not None and hasattr(secret, "get"):
        headers["Authorization"] = f"Bearer {secret.get()}"
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            resp = await client.get(base + "/models", headers=headers)
    except httpx.HTTPError as exc:
        ms = (time.perf_counter() - started) * 1000
        return _line(False, f"upstream {name}", f"{base}: {type(exc).__name__} after {ms:.0f} ms")
    ms = (time.perf_counter() - started) * 1000
    ok = resp.status_code < 500 and resp.status_code not in (401, 403)
    return _line(
        ok, f"upstream {name}", f"{base}/models answered {resp.status_code} in {ms:.0f} ms"
    )


async def run_checks(settings: Settings) -> bool:
    results = [
        _line(
            True,
            "config",
            f"{settings.source}: {len(settings.providers)} provider(s), "
            f"aliases {', '.join(settings.models) or '-'}",
        )
    ]
    engine = create_engine(settings.store.url)
    url = redact_url(settings.store.url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        pending = await pending_migrations(engine)
        results.append(_line(True, "store", f"{url} reachable"))
        if not pending:
            state = "up to date"
        elif settings.store.migrate:
            state = f"pending {', '.join(pending)} (applied by serve)"
        else:
            state = f"pending {', '.join(pending)}: run `pilothouse db upgrade`"
        results.append(_line(not pending or settings.store.migrate, "migrations", state))
    except Exception as exc:
        results.append(_line(False, "store", f"{url}: {type(exc).__name__}: {exc}"))
    finally:
        await engine.dispose()
    if settings.redis.url:
        client = Redis.from_url(settings.redis.url)
        try:
            await client.ping()
            results.append(_line(True, "redis", "reachable"))
        except Exception as exc:
            results.append(_line(False, "redis", f"{type(exc).__name__}: {exc}"))
        finally:
            await client.aclose()
    for name, provider in settings.provider_configs.items():
        # OpenAI-compatible upstreams list models at <base_url>/models with a bearer key;
        # other HTTP providers authenticate differently and are named, not probed.
        if provider.type == "openai":
            results.append(await _probe_upstream(name, provider))
        elif getattr(provider, "base_url", None):
            console.print(f"note: upstream {name} ({provider.type}) is not probed", highlight=False)
    if settings.server.admin_key is None:
        console.print(
            "note: no server.admin_key: the admin API and console need one "
            "(serve --dev prints a one-run key)"
        )
    return all(results)
