"""``pilothouse rag``: ingest, search, status, reembed, verify-deleted, eval.

Embeddings go through the gateway pipeline: in process (an embedded gateway
over the same config, so usage is costed in its ledger) or, with
``--base-url``, through a running gateway with ``--api-key``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pilothouse.cache.citations import purge_shared
from pilothouse.cli.common import ConfigOption, console, fail, run, settings_from
from pilothouse.config.schema import Settings
from pilothouse.errors import PilothouseError
from pilothouse.rag.parsers import SUFFIXES, parse_file
from pilothouse.rag.service import IncomingDocument, RagService
from pilothouse.rag.store import open_store

app = typer.Typer(help="RAG collections: ingest, search, status, deletion, evaluation.")

BaseUrlOption = typer.Option(
    None, "--base-url", help="Embed through a running gateway (e.g. http://127.0.0.1:4000/v1)."
)
ApiKeyOption = typer.Option(
    None, "--api-key", envvar="PILOTHOUSE_API_KEY", help="Inference key for --base-url."
)


@contextlib.asynccontextmanager
async def service_for(
    settings: Settings, base_url: str | None, api_key: str | None
) -> AsyncIterator[RagService]:
    import httpx

    store = open_store(settings.rag.store.url)
    async with contextlib.AsyncExitStack() as stack:
        if base_url:
            if not api_key:
                fail("--base-url needs --api-key (or PILOTHOUSE_API_KEY)")
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=base_url.rstrip("/"),
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=httpx.Timeout(300.0),
                )
            )
        else:
            from pilothouse.gateway.embedded import embedded_gateway

            gw = await stack.enter_async_context(embedded_gateway(settings, key_name="rag-cli"))
            client = gw.client

        async def embed(alias: str, texts: list[str]) -> np.ndarray:
            resp = await client.post("/embeddings", json={"model": alias, "input": texts})
            if resp.status_code != 200:
                raise RuntimeError(f"embedding failed ({resp.status_code}): {resp.text[:300]}")
            data = resp.json()["data"]
            return np.asarray([d["embedding"] for d in data], dtype=np.float32)

        stack.push_async_callback(store.close)
        yield RagService(settings, store, embed)


def collect_files(paths: list[Path]) -> list[tuple[str, Path]]:
    """``(document id, file)`` pairs; ids are paths relative to each argument (stable)."""
    out: list[tuple[str, Path]] = []
    for root in paths:
        if root.is_dir():
            for f in sorted(root.rglob("*")):
                if f.is_file() and f.suffix.lower() in SUFFIXES:
                    out.append((f.relative_to(root).as_posix(), f))
        elif root.is_file():
            out.append((root.name, root))
        else:
            fail(f"{root}: no such file or directory")
    return out


def _meta(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--meta takes key=value, got {pair!r}")
        out[key] = value
    return out


@app.command()
def ingest(
    collection: str,
    paths: list[Path] = typer.Argument(..., help="Files or directories (md, txt, html, pdf)."),
    acl: str | None = typer.Option(None, "--acl", help="Comma-separated ACL groups."),
    meta: list[str] = typer.Option([], "--meta", help="Metadata key=value (repeatable)."),
    sync: bool = typer.Option(False, "--sync", help="Delete documents whose file is gone."),
    queue: bool = typer.Option(
        False, "--queue", help="Queue one job per file for `pilothouse worker` processes."
    ),
    base_url: str | None = BaseUrlOption,
    api_key: str | None = ApiKeyOption,
    config: Path | None = ConfigOption,
) -> None:
    """Index files: unchanged ones are skipped, changed ones re-chunked and re-embedded."""
    settings = settings_from(config)
    groups = [g.strip() for g in (acl or "").split(",") if g.strip()]
    metadata = _meta(meta)
    files = collect_files(paths)
    if queue:
        from pilothouse.rag.jobs import enqueue_files

        queued = run(lambda: enqueue_files(settings, collection, files, groups, metadata))
        console.print(f"{collection}: queued {queued} of {len(files)} files for workers")
        return

    async def go() -> dict[str, int]:
        counts = {"created": 0, "updated": 0, "unchanged": 0, "deleted": 0, "chunks": 0}
        async with service_for(settings, base_url, api_key) as service:
            service.config(collection)
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=not console.is_terminal,
            ) as progress:
                task = progress.add_task(f"ingest {collection}", total=len(files))
                for doc_id, path in files:
                    parsed = parse_file(path)
                    doc = IncomingDocument(
                        doc_id,
                        parsed.text,
                        parsed.title or path.stem,
                        str(path.resolve()),
                        list(groups),
                        dict(metadata),
                        path.stat().st_mtime,
                    )

                    def chunked(n: int) -> None:
                        counts["chunks"] += n

                    result = await service.ingest(collection, [doc], on_chunks=chunked)
                    counts[result[doc_id]] += 1
                    progress.advance(task)
            if sync:
                roots = [str(p.resolve()) for p in paths]
                seen = {doc_id for doc_id, _ in files}
                for known in await service.store.documents(collection):
                    src = known.source
                    under = src is not None and any(src.startswith(r) for r in roots)
                    if under and known.id not in seen:
                        await service.delete(collection, known.id)
                        await purge_shared(settings, collection, [known.id])
                        counts["deleted"] += 1
        return counts

    counts = run(go)
    console.print(
        f"{collection}: {counts['created']} created, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged, {counts['deleted']} deleted "
        f"({counts['chunks']} chunks embedded)"
    )


@app.command()
def search(
    collection: str,
    query: str,
    k: int | None = typer.Option(None, "-k", "--k", help="Number of chunks to return."),
    mode: str | None = typer.Option(None, "--mode", help="dense | keyword | hybrid"),
    groups: str | None = typer.Option(
        None, "--groups", help="Search as these ACL groups (default: as admin)."
    ),
    filters: list[str] = typer.Option(
        [], "--filter", help="Metadata filter key=value (repeat; same key twice = either value)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    base_url: str | None = BaseUrlOption,
    api_key: str | None = ApiKeyOption,
    config: Path | None = ConfigOption,
) -> None:
    """Search a collection (dense, keyword or hybrid)."""
    from pilothouse.rag.store import parse_filter

    settings = settings_from(config)
    caller = None if groups is None else [g for g in groups.split(",") if g]
    raw: dict[str, list[str]] = {}
    for item in filters:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--filter wants key=value, got {item!r}")
        raw.setdefault(name, []).append(value)
    where = parse_filter(raw) if raw else None

    async def go() -> Any:
        async with service_for(settings, base_url, api_key) as service:
            return await service.search(
                collection, query, k=k, mode=mode, groups=caller, where=where
            )

    result = run(go)
    if as_json:
        from pilothouse.rag.routes import hit_json

        typer.echo(json.dumps({"mode": result.mode, "data": [hit_json(h) for h in result.hits]}))
        return
    table = Table(title=f"{collection} · {result.mode} · {result.latency_ms:.1f} ms")
    for col in ("score", "document", "chunk", "text"):
        table.add_column(col)
    for h in result.hits:
        table.add_row(f"{h.score:.4f}", h.document_id, h.chunk_id, h.text[:80].replace("\n", " "))
    console.print(table)


@app.command()
def status(
    collection: str,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Documents, chunks, bytes, embedder and version, stale documents, orphans, last ingest."""
    settings = settings_from(config)

    async def go() -> dict[str, Any]:
        store = open_store(settings.rag.store.url)
        try:
            return await RagService(settings, store, _no_embed).status(collection)
        finally:
            await store.close()

    info = run(go)
    if as_json:
        typer.echo(json.dumps(info))
    else:
        table = Table(title=f"collection {collection}")
        table.add_column("field")
        table.add_column("value")
        for key, value in info.items():
            shown = ", ".join(value) if isinstance(value, list) else str(value)
            table.add_row(key, shown or "-")
        console.print(table)
    if info["freshness_exceeded"]:
        console.print(f"[yellow]freshness exceeded: {len(info['stale_documents'])} stale[/]")


@app.command()
def reembed(
    collection: str,
    base_url: str | None = BaseUrlOption,
    api_key: str | None = ApiKeyOption,
    config: Path | None = ConfigOption,
) -> None:
    """Re-embed every chunk with the configured embedder (a new embedder version)."""
    settings = settings_from(config)

    async def go() -> int:
        async with service_for(settings, base_url, api_key) as service:
            return await service.reembed(collection)

    n = run(go)
    console.print(f"{collection}: re-embedded {n} chunks")


@app.command("verify-deleted")
def verify_deleted(
    collection: str,
    doc_id: str,
    probe: list[str] = typer.Option([], "--probe", help="Extra text to search for."),
    base_url: str | None = BaseUrlOption,
    api_key: str | None = ApiKeyOption,
    config: Path | None = ConfigOption,
) -> None:
    """Search for a deleted document in every mode; exit 1 if anything comes back."""
    settings = settings_from(config)

    async def go() -> list[str]:
        async with service_for(settings, base_url, api_key) as service:
            probes = list(probe) + await service.store.chunks_of(collection, doc_id)
            return await service.verify_deleted(collection, doc_id, probes[:20])

    found = run(go)
    if found:
        for where in found:
            console.print(f"[red]still found:[/] {where}")
        raise typer.Exit(1)
    console.print(f"{doc_id}: not found in {collection} (dense, keyword, hybrid, records)")


async def _no_embed(alias: str, texts: list[str]) -> np.ndarray:
    raise RuntimeError("status does not embed")


@app.command("eval")
def eval_cmd(
    collection: str,
    qrels: Path = typer.Argument(
        ..., help="BEIR qrels (JSONL or TSV): query-id, corpus-id, score."
    ),
    queries: Path | None = typer.Option(None, help="BEIR queries.jsonl (default: beside qrels)."),
    corpus: Path | None = typer.Option(
        None, help="BEIR corpus.jsonl to ingest first (unchanged documents are skipped)."
    ),
    k: int = typer.Option(10, "-k", "--k", help="Cut-off for recall@k and MRR."),
    modes: str = typer.Option(
        "dense,keyword,hybrid", "--modes", help="Comma-separated retrieval modes to compare."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    base_url: str | None = BaseUrlOption,
    api_key: str | None = ApiKeyOption,
    config: Path | None = ConfigOption,
) -> None:
    """Retrieval quality per mode with bootstrap 95% confidence intervals."""
    from pilothouse.rag import evaluation as ev

    settings = settings_from(config)
    judged = ev.load_qrels(qrels)
    qpath = queries or _beside(qrels, "queries.jsonl")
    texts = ev.load_queries(qpath)
    missing = sorted(set(judged) - set(texts))
    if missing:
        fail(f"{qpath}: no text for queries {', '.join(missing[:5])}")
    wanted = [m.strip() for m in modes.split(",") if m.strip()]

    async def go() -> list[dict[str, Any]]:
        async with service_for(settings, base_url, api_key) as service:
            if corpus is not None:
                docs = [
                    IncomingDocument(str(r["_id"]), str(r.get("text", "")), r.get("title") or None)
                    for r in ev.load_jsonl(corpus)
                ]
                await service.ingest(collection, docs)
            out = []
            for mode in wanted:
                per_query = []
                for qid in sorted(judged):
                    result = await service.search(
                        collection, texts[qid], k=max(k, 10) * 5, mode=mode
                    )
                    ranked = ev.dedupe([h.document_id for h in result.hits])
                    per_query.append(ev.case_metrics(ranked, judged[qid], k))
                out.append(ev.summarize(per_query, mode))
            return out

    report = run(go)
    if as_json:
        typer.echo(json.dumps({"collection": collection, "k": k, "modes": report}))
        return
    table = Table(title=f"{collection}: retrieval quality ({len(judged)} queries, 95% CI)")
    table.add_column("mode")
    names = [n for n in report[0] if n not in ("mode", "queries")] if report else []
    for n in names:
        table.add_column(n)
    for row in report:
        table.add_row(
            row["mode"],
            *(f"{row[n]['mean']:.3f} [{row[n]['low']:.3f}, {row[n]['high']:.3f}]" for n in names),
        )
    console.print(table)


def _beside(path: Path, name: str) -> Path:
    for candidate in (path.parent / name, path.parent.parent / name):
        if candidate.is_file():
            return candidate
    fail(f"no {name} beside {path}; pass --queries")


def worker(
    burst: bool = typer.Option(False, "--burst", help="Exit when the queue is empty."),
    max_jobs: int = typer.Option(2, "--max-jobs", help="Jobs run at once in this process."),
    config: Path | None = ConfigOption,
) -> None:
    """Run RAG ingestion jobs from the shared Redis queue (any number of machines)."""
    from arq.worker import Worker

    from pilothouse.rag.jobs import worker_options

    settings = settings_from(config)
    try:
        options = worker_options(settings, burst=burst, max_jobs=max_jobs)
    except PilothouseError as exc:
        fail(exc.message)
    Worker(**options).run()
