"""``pilothouse doctor``: can this config serve? Store, migrations and Redis, checked live."""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy import text

from pilothouse.cli.common import console
from pilothouse.config.schema import Settings
from pilothouse.store.db import create_engine, pending_migrations, redact_url


def _line(ok: bool, what: str, detail: str) -> bool:
    mark = "[green]ok[/]  " if ok else "[red]FAIL[/]"
    console.print(f"{mark} {what}: {detail}", highlight=False)
    return ok


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
    if settings.server.admin_key is None:
        console.print(
            "note: no server.admin_key: the admin API and console need one "
            "(serve --dev prints a one-run key)"
        )
    return all(results)
