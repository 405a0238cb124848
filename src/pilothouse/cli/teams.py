"""``pilothouse teams|users create|list|show|update|delete``: teams and users in the store.

Each has its own budget, RPM/TPM and allowed models; keys join one with
``pilothouse keys create --team ID --user ID``. Running gateways pick a change
up within about a second (they poll the store's ``updated_at``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer
from rich.table import Table

from pilothouse.cli.common import (
    ActorOption,
    ConfigOption,
    actor_name,
    console,
    run,
    with_engine,
)
from pilothouse.limits.scopes import ScopeRecord, ScopeStore


def _limits(
    models: str | None, rpm: int | None, tpm: int | None, budget_usd: str | None
) -> dict[str, Any]:
    """Option values as a body; for updates ``*``/0/``none`` remove a limit."""
    spec: dict[str, Any] = {}
    if models is not None:
        spec["models"] = None if models == "*" else [m.strip() for m in models.split(",") if m]
    for field, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None:
            spec[field] = value or None
    if budget_usd is not None:
        spec["budget_usd"] = None if budget_usd.lower() == "none" else budget_usd
    return spec


def _parse_metadata(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise typer.BadParameter(f"--metadata must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter("--metadata must be a JSON object")
    return value


def _row(record: ScopeRecord) -> list[str]:
    pub = record.public()
    budget = f"{pub['budget_usd']} ({record.budget_period})" if pub["budget_usd"] else "-"
    models = ",".join(pub["models"] or ["*"])
    row = [record.id, record.name, models, str(record.rpm or "-"), str(record.tpm or "-"), budget]
    return row + ([record.team_id or "-"] if record.kind == "user" else [])


def _print(records: list[ScopeRecord], kind: str) -> None:
    headers = ["id", "name", "models", "rpm", "tpm", "budget"] + (
        ["team"] if kind == "user" else []
    )
    table = Table(*headers)
    for record in records:
        table.add_row(*_row(record))
    console.print(table)


def group(kind: str) -> typer.Typer:
    """The command group for ``kind`` (``team`` or ``user``)."""
    app = typer.Typer(
        help=f"Create, list, show, update and delete {kind}s (own budget, RPM/TPM, models).",
        no_args_is_help=True,
    )

    async def with_store(config: Path | None, fn: Any) -> Any:
        return await with_engine(config, lambda engine: fn(ScopeStore(engine)))

    def create(
        name: str = typer.Option(..., "--name", help=f"The {kind}'s unique name."),
        models: str | None = typer.Option(None, help="Comma-separated aliases it may use."),
        rpm: int | None = typer.Option(None, help="Requests per minute, over all its keys."),
        tpm: int | None = typer.Option(None, help="Tokens per minute, over all its keys."),
        budget_usd: str | None = typer.Option(None, help="Spend limit in USD, e.g. 250.00"),
        budget_period: str = typer.Option("total", help="total, day or month."),
        metadata: str | None = typer.Option(None, help="JSON object."),
        team: str | None = typer.Option(None, "--team", help="The user's team id (users only)."),
        actor: str | None = ActorOption,
        config: Path | None = ConfigOption,
    ) -> None:
        spec: dict[str, Any] = {"name": name, "budget_period": budget_period}
        spec.update({k: v for k, v in _limits(models, rpm, tpm, budget_usd).items() if v})
        if metadata:
            spec["metadata"] = _parse_metadata(metadata)
        if team is not None:
            if kind != "user":
                raise typer.BadParameter("--team is for users")
            spec["team_id"] = team
        who = actor_name(actor)
        record = run(lambda: with_store(config, lambda s: s.create(kind, spec, actor=who)))
        console.print(f"created {kind} [bold]{record.id}[/] ({record.name})")

    def list_all(
        team: str | None = typer.Option(None, "--team", help="Only users of this team."),
        config: Path | None = ConfigOption,
    ) -> None:
        _print(run(lambda: with_store(config, lambda s: s.list_all(kind, team_id=team))), kind)

    def show(scope_id: str, config: Path | None = ConfigOption) -> None:
        record = run(lambda: with_store(config, lambda s: s.get(kind, scope_id)))
        print(orjson.dumps(record.public(), option=orjson.OPT_INDENT_2).decode())

    def update(
        scope_id: str,
        name: str | None = typer.Option(None, "--name", help="New display name."),
        models: str | None = typer.Option(None, help="Comma-separated aliases; '*' for all."),
        rpm: int | None = typer.Option(None, help="Requests per minute (0 removes the limit)."),
        tpm: int | None = typer.Option(None, help="Tokens per minute (0 removes the limit)."),
        budget_usd: str | None = typer.Option(None, help="Spend limit in USD ('none' removes it)."),
        budget_period: str | None = typer.Option(None, help="total, day or month."),
        metadata: str | None = typer.Option(None, help="JSON object; replaces the metadata."),
        team: str | None = typer.Option(
            None, "--team", help="Move the user (and its keys) to this team; 'none' for no team."
        ),
        actor: str | None = ActorOption,
        config: Path | None = ConfigOption,
    ) -> None:
        patch = _limits(models, rpm, tpm, budget_usd)
        if name is not None:
            patch["name"] = name
        if budget_period is not None:
            patch["budget_period"] = budget_period
        if metadata is not None:
            patch["metadata"] = _parse_metadata(metadata)
        if team is not None:
            if kind != "user":
                raise typer.BadParameter("--team is for users")
            patch["team_id"] = None if team.lower() == "none" else team
        if not patch:
            raise typer.BadParameter("nothing to change: give at least one option")
        who = actor_name(actor)
        record, _moved = run(
            lambda: with_store(config, lambda s: s.update(kind, scope_id, patch, actor=who))
        )
        console.print(f"updated {kind} {record.id} ({record.name})")

    def delete(
        scope_id: str, actor: str | None = ActorOption, config: Path | None = ConfigOption
    ) -> None:
        who = actor_name(actor)
        record = run(lambda: with_store(config, lambda s: s.delete(kind, scope_id, actor=who)))
        console.print(f"deleted {kind} {record.id} ({record.name})")

    create.__doc__ = f"Create a {kind}."
    list_all.__doc__ = f"List {kind}s."
    show.__doc__ = f"Show one {kind} as JSON."
    update.__doc__ = f"Change a {kind}'s budget, limits, models or name; gateways apply it in ~1 s."
    delete.__doc__ = f"Delete a {kind} no live key (or, for a team, no user) refers to."
    app.command()(create)
    app.command("list")(list_all)
    app.command()(show)
    app.command()(update)
    app.command()(delete)
    return app


teams_app = group("team")
users_app = group("user")
