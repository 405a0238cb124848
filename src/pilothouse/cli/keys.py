"""``pilothouse keys create|list|update|rotate|revoke``: manage virtual keys in the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from pilothouse.cli.common import (
    ActorOption,
    ConfigOption,
    actor_name,
    check_aliases,
    check_choice,
    console,
    run,
    settings_from,
    with_engine,
)
from pilothouse.limits.key_usage import KeySpend, spend_by_key
from pilothouse.limits.keys import DEFAULT_ROTATION_GRACE_S, PERIODS, ROLES, KeyStore
from pilothouse.limits.money import pico_to_str

app = typer.Typer(
    help="Create, list, update, rotate and revoke virtual API keys.", no_args_is_help=True
)


async def _with_store(config: Path | None, fn: Any) -> Any:
    return await with_engine(config, lambda engine: fn(KeyStore(engine)))


@app.command()
def create(
    name: str = typer.Option(..., "--name", help="A label for the key (team, app, person)."),
    models: str | None = typer.Option(None, help="Comma-separated aliases this key may use."),
    rpm: int | None = typer.Option(None, help="Requests per minute."),
    tpm: int | None = typer.Option(None, help="Tokens per minute."),
    budget_usd: str | None = typer.Option(None, help="Spend limit in USD, e.g. 25.00"),
    budget_period: str = typer.Option("total", help="total, day or month."),
    metadata: str | None = typer.Option(None, help='JSON object, e.g. \'{"team": "search"}\''),
    admin: bool = typer.Option(False, "--admin", help="Grant the admin scope as well."),
    role: str | None = typer.Option(
        None, "--role", help="Make it an admin principal: admin, operator, viewer or finance."
    ),
    team: str | None = typer.Option(None, "--team", help="Team id: its limits apply too."),
    user: str | None = typer.Option(None, "--user", help="User id (of the team, if given)."),
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
) -> None:
    """Create a key. The secret is printed once and never stored."""
    check_choice(budget_period, PERIODS, "--budget-period")
    if role is not None:
        check_choice(role, ROLES, "--role")
    spec: dict[str, Any] = {"name": name, "budget_period": budget_period}
    if models:
        spec["models"] = [m.strip() for m in models.split(",") if m.strip()]
        check_aliases(settings_from(config), spec["models"], "--models")
    for field, value in (("rpm", rpm), ("tpm", tpm), ("budget_usd", budget_usd)):
        if value is not None:
            spec[field] = value
    if metadata:
        spec["metadata"] = parse_json_object(metadata, "--metadata")
    if admin:
        spec["scopes"] = ["inference", "admin"]
    if role:
        spec["role"] = role
    if team:
        spec["team_id"] = team
    if user:
        spec["user_id"] = user
    who = actor_name(actor)
    record, secret = run(lambda: _with_store(config, lambda ks: ks.create(spec, actor=who)))
    console.print(f"created key [bold]{record.id}[/] ({record.name})")
    console.print("secret (shown once, store it now):")
    print(secret)


@app.command("list")
def list_keys(
    include_revoked: bool = typer.Option(False, "--all", help="Include revoked keys."),
    config: Path | None = ConfigOption,
) -> None:
    """List keys (never their secrets) with spend this period, budget left and last use.

    Spend comes from the usage ledger, so requests still in flight are not counted yet.
    """

    async def read(engine: Any) -> tuple[Any, dict[str, KeySpend]]:
        records = await KeyStore(engine).list_all(include_revoked=include_revoked)
        return records, await spend_by_key(engine)

    records, spend = run(lambda: with_engine(config, read))
    teams = any(r.team_id for r in records)  # the column only when a key has a team
    table = Table("id", "name", "prefix", *["team"] * teams, "models", "rpm", "tpm", "budget",
                  "spend", "left", "last used", "revoked")  # fmt: skip
    for r in records:
        pub = r.public()
        used = spend.get(r.id) or KeySpend()
        spent = used.in_period(r.budget_period)
        left = pico_to_str(max(0, r.budget_pico - spent)) if r.budget_pico is not None else "-"
        table.add_row(
            r.id,
            r.name,
            r.prefix + "…",
            *[r.team_id or "-"] * teams,
            ",".join(pub["models"] or ["*"]),
            str(r.rpm or "-"),
            str(r.tpm or "-"),
            f"{pub['budget_usd']} ({r.budget_period})" if pub["budget_usd"] else "-",
            pico_to_str(spent),
            left,
            used.last_used_at.isoformat(timespec="seconds") if used.last_used_at else "never",
            "yes" if r.revoked else "",
        )
    # Piped (no terminal width to fit): one line per key rather than 80 squeezed columns.
    (console if console.is_terminal else Console(width=200)).print(table)


@app.command()
def revoke(
    key_id: str, actor: str | None = ActorOption, config: Path | None = ConfigOption
) -> None:
    """Revoke a key; running gateways stop accepting it within about a second."""
    who = actor_name(actor)
    record = run(lambda: _with_store(config, lambda ks: ks.revoke(key_id, actor=who)))
    console.print(f"revoked {record.id} ({record.name})")


@app.command()
def update(
    key_id: str,
    models: str | None = typer.Option(None, help="Comma-separated aliases; '*' for all."),
    rpm: int | None = typer.Option(None, help="Requests per minute (0 removes the limit)."),
    tpm: int | None = typer.Option(None, help="Tokens per minute (0 removes the limit)."),
    budget_usd: str | None = typer.Option(None, help="Spend limit in USD ('none' removes it)."),
    budget_period: str | None = typer.Option(None, help="total, day or month."),
    metadata: str | None = typer.Option(None, help="JSON object; replaces the metadata."),
    expires_at: str | None = typer.Option(
        None, help="ISO 8601 time the key stops working ('never' clears it)."
    ),
    team: str | None = typer.Option(None, "--team", help="Move to this team ('none': no team)."),
    user: str | None = typer.Option(None, "--user", help="Give to this user ('none': no user)."),
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
) -> None:
    """Change a key's models, limits, budget, metadata or expiry; the secret stays the same.

    Running gateways apply the change within about a second.
    """
    patch: dict[str, Any] = {}
    if models is not None:
        patch["models"] = (
            None if models == "*" else [m.strip() for m in models.split(",") if m.strip()]
        )
    if budget_period is not None:
        check_choice(budget_period, PERIODS, "--budget-period")
    for field, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None:
            patch[field] = value or None
    if budget_usd is not None:
        patch["budget_usd"] = None if budget_usd.lower() == "none" else budget_usd
    if budget_period is not None:
        patch["budget_period"] = budget_period
    if metadata is not None:
        patch["metadata"] = parse_json_object(metadata, "--metadata")
    if expires_at is not None:
        patch["expires_at"] = None if expires_at.lower() == "never" else expires_at
    for field, ref in (("team_id", team), ("user_id", user)):
        if ref is not None:
            patch[field] = None if ref.lower() == "none" else ref
    if not patch:
        raise typer.BadParameter("nothing to change: give at least one option")
    who = actor_name(actor)
    record = run(lambda: _with_store(config, lambda ks: ks.update(key_id, patch, actor=who)))
    console.print(f"updated {record.id} ({record.name})")


@app.command()
def rotate(
    key_id: str,
    grace_s: float = typer.Option(
        DEFAULT_ROTATION_GRACE_S, "--grace-s", help="Seconds the old secret keeps working."
    ),
    actor: str | None = ActorOption,
    config: Path | None = ConfigOption,
) -> None:
    """Issue a new secret; the old one works for --grace-s seconds, then stops."""
    who = actor_name(actor)
    record, secret = run(
        lambda: _with_store(config, lambda ks: ks.rotate(key_id, grace_s=grace_s, actor=who))
    )
    console.print(f"rotated {record.id} ({record.name}); old secret valid for {grace_s:g} s")
    console.print("new secret (shown once, store it now):")
    print(secret)


def parse_json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise typer.BadParameter(f"{option} must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter(f"{option} must be a JSON object")
    return value
