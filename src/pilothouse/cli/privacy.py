"""`pilothouse privacy erase`: remove one subject's content everywhere, with a receipt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from pilothouse.cli.common import (
    ActorOption,
    ConfigOption,
    actor_name,
    console,
    fail,
    run,
    settings_from,
    with_engine,
)

app = typer.Typer(help="Data governance: erasure with a receipt.", no_args_is_help=True)


@app.command("erase")
def erase_cmd(
    user: str | None = typer.Option(None, "--user", help="End-user id (trace metadata user_id)."),
    key: str | None = typer.Option(None, "--key", help="API key id: everything sent with it."),
    request: str | None = typer.Option(None, "--request", help="One request id."),
    config: Path | None = ConfigOption,
    actor: str | None = ActorOption,
    as_json: bool = typer.Option(False, "--json", help="Print the receipt as JSON."),
) -> None:
    """Erase a subject's content from traces, evals, review, caches; keep usage and cost.

    Ends with a residue scan of every store; exits 1 if any erased value
    remains, 3 if there was nothing to erase.
    """
    chosen = [v for v in (user, key, request) if v]
    if len(chosen) != 1:
        fail("give exactly one of --user, --key or --request")
    settings = settings_from(config)

    async def go() -> Any:
        from redis.asyncio import Redis
        from sqlalchemy.ext.asyncio import AsyncEngine

        from pilothouse.guard.erase import erase
        from pilothouse.telemetry.metadata_privacy import MetadataPrivacy

        redis = Redis.from_url(settings.redis.url) if settings.redis.url else None
        rag = None
        if settings.rag.collections:
            from pilothouse.rag.store import open_store

            rag = (open_store(settings.rag.store.url), list(settings.rag.collections))
        try:

            async def erase_in(engine: AsyncEngine) -> Any:
                stored_as = None
                if user is not None:  # the user id as metadata privacy stored it
                    privacy = await MetadataPrivacy.for_store(settings, engine)
                    stored_as = (privacy.apply({"user": user}) or {}).get("user")
                return await erase(
                    engine, user=user, key=key, request=request, redis=redis,
                    redis_prefix=settings.redis.prefix, actor=actor_name(actor), rag=rag,
                    stored_as=stored_as,
                )  # fmt: skip

            return await with_engine(config, erase_in)
        finally:
            if redis is not None:
                await redis.aclose()
            if rag is not None:
                await rag[0].close()

    receipt = run(go)
    what = "--user" if user else "--key" if key else "--request"
    if not receipt.found:
        console.print(f"nothing to erase: no data found for {what} {chosen[0]}", highlight=False)
        raise typer.Exit(3)
    if as_json:
        import orjson

        console.print_json(orjson.dumps(receipt.public()).decode())
    else:
        table = Table("store", "rows changed", "residue")
        stores = sorted(set(receipt.touched) | set(receipt.residue))
        for store in stores:
            table.add_row(
                store, str(receipt.touched.get(store, 0)), str(receipt.residue.get(store, 0))
            )
        console.print(f"erasure receipt for {receipt.subject} ({receipt.values} values erased)")
        console.print(table)
        console.print(f"audit row: seq {receipt.audit_seq}")
    if not receipt.clean:
        left = {k: v for k, v in receipt.residue.items() if v}
        console.print(f"[bold red]residue scan FAILED:[/] erased values remain in {left}")
        raise typer.Exit(1)
    console.print("residue scan: clean (no erased value remains in any store)")
