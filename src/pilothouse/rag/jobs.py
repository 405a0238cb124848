"""Ingestion and re-embedding as arq jobs on the shared Redis, run by `pilothouse worker`.

One job per document file; its arq job id is ``queue:collection:doc_id:sha256(file)``
so the same file version is queued once however many times it is submitted,
and any number of workers on any machines drain the queue without doing the
same document twice. Each worker embeds through its own in-process gateway
over the same config, so embeddings stay costed and traced.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from pathlib import Path
from typing import Any

from pilothouse.config.schema import Settings

QUEUE = "rag"


def redis_settings(settings: Settings) -> Any:
    from arq.connections import RedisSettings

    if not settings.redis.url:
        from pilothouse.errors import ConfigError

        raise ConfigError("rag jobs need `redis.url` in the config (the shared job queue)")
    return RedisSettings.from_dsn(settings.redis.url)


def queue_name(settings: Settings) -> str:
    return settings.redis.prefix + QUEUE


def job_id(queue: str, collection: str, doc_id: str, path: Path) -> str:
    """arq job ids are global on the Redis, so the queue name (with prefix) leads."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:24]
    return f"{queue}:{collection}:{doc_id}:{digest}"


async def enqueue_files(
    settings: Settings,
    collection: str,
    files: list[tuple[str, Path]],
    acl: list[str],
    metadata: dict[str, str],
) -> int:
    """Queue one ingest job per file; returns how many were newly queued."""
    from arq import create_pool

    pool = await create_pool(redis_settings(settings), default_queue_name=queue_name(settings))
    try:
        queued = 0
        for doc_id, path in files:
            job = await pool.enqueue_job(
                "ingest_file",
                collection,
                doc_id,
                str(path.resolve()),
                acl,
                metadata,
                _job_id=job_id(queue_name(settings), collection, doc_id, path),
            )
            queued += job is not None
        return queued
    finally:
        await pool.aclose()


async def ingest_file(
    ctx: dict[str, Any],
    collection: str,
    doc_id: str,
    path: str,
    acl: list[str],
    metadata: dict[str, str],
) -> str:
    from pilothouse.rag.parsers import parse_file
    from pilothouse.rag.service import IncomingDocument

    def read() -> IncomingDocument:
        file = Path(path)
        parsed = parse_file(file)
        return IncomingDocument(
            doc_id,
            parsed.text,
            parsed.title or file.stem,
            str(file),
            list(acl),
            dict(metadata),
            file.stat().st_mtime,
        )

    doc = await asyncio.to_thread(read)
    result = await ctx["rag"].ingest(collection, [doc])
    return str(result[doc_id])


def worker_options(settings: Settings, *, burst: bool, max_jobs: int) -> dict[str, Any]:
    from arq.worker import func

    async def startup(ctx: dict[str, Any]) -> None:
        from pilothouse.cli.rag import service_for

        stack = contextlib.AsyncExitStack()
        ctx["stack"] = stack
        ctx["rag"] = await stack.enter_async_context(service_for(settings, None, None))

    async def shutdown(ctx: dict[str, Any]) -> None:
        stack = ctx.get("stack")
        if stack is not None:
            await stack.aclose()

    return {
        "functions": [func(ingest_file, name="ingest_file", max_tries=3)],
        "queue_name": queue_name(settings),
        "redis_settings": redis_settings(settings),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "burst": burst,
        "max_jobs": max_jobs,
        "poll_delay": 0.2,
        "keep_result": 3600,
    }
