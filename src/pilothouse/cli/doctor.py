"""``pilothouse doctor``: can this config serve? Store, migrations and Redis, checked live."""

from __future__ import annotations

import time

import httpx
from redis.asyncio import Redis
from rich.markup import escape
from sqlalchemy import text

from pilothouse.cli.common import console
from pilothouse.config.schema import Settings
from pilothouse.errors import PilothouseError
from pilothouse.providers.base import provider_class
from pilothouse.store.db import create_engine, pending_migrations, redact_url


def _line(ok: bool, what: str, detail: str) -> bool:
    mark = "[green]ok[/]  " if ok else "[red]FAIL[/]"
    console.print(f"{mark} {escape(what)}: {escape(detail)}", highlight=False)
    return ok


def _listing(config: object) -> tuple[str, dict[str, str]]:
    """The provider's model-listing base URL and auth headers (``<base>/models`` is probed)."""
    base = str(getattr(config, "base_url", "")).rstrip("/")
    secret = getattr(config, "api_key", None)
    key = secret.get() if secret is not None and hasattr(secret, "get") else None
    if getattr(config, "type", None) == "anthropic":
        # Anthropic's base_url may omit /v1; its listing authenticates with x-api-key.
        base = base.removesuffix("/v1") + "/v1"
        headers = {"anthropic-version": str(getattr(config, "anthropic_version", "2023-06-01"))}
        return base, headers | ({"x-api-key": key} if key else {})
    return base, {"Authorization": f"Bearer {key}"} if key else {}


async def _probe_upstream(name: str, config: object) -> bool:
    """GET ``<base_url>/models`` (OpenAI's and Anthropic's listing) and time it.

    Serve starts without an upstream, then fails every request: doctor says so first.
    Only a refused connection, a timeout, a 5xx or refused credentials fail the check.
    """
    base, headers = _listing(config)
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


def _check_providers(settings: Settings) -> list[bool]:
    """Each provider's preflight: its optional library imports, its local files exist.

    A provider whose library is not installed would let serve start and then die (or fail
    every request), so doctor names it instead of saying OK.
    """
    results = []
    for name, cfg in settings.provider_configs.items():
        try:
            provider_class(cfg.type).preflight(cfg)
        except PilothouseError as exc:
            results.append(_line(False, f"provider {name} ({cfg.type})", exc.message))
        else:
            results.append(_line(True, f"provider {name} ({cfg.type})", "dependencies import"))
    return results


async def run_checks(settings: Settings) -> bool:
    results = [
        _line(
            True,
            "config",
            f"{settings.source}: {len(settings.providers)} provider(s), "
            f"aliases {', '.join(settings.models) or '-'}",
        ),
        *_check_providers(settings),
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
        # other remote providers (Azure, Gemini, Bedrock: signed or keyed differently) are
        # named, not probed, so a missing line is never read as "reachable".
        if provider.type in ("openai", "anthropic"):
            results.append(await _probe_upstream(name, provider))
        elif any(getattr(provider, f, None) for f in ("base_url", "endpoint", "endpoint_url")) or (
            provider.type in ("bedrock", "gemini")
        ):
            console.print(f"note: upstream {name} ({provider.type}) is not probed", highlight=False)
    if settings.server.admin_key is None:
        console.print(
            "note: no server.admin_key: the admin API and console need one "
            "(serve --dev prints a one-run key)"
        )
    return all(results)
