"""``pilothouse slo status|rules``: SLO health from a running gateway, and Prometheus rules."""

from __future__ import annotations

from pathlib import Path

import httpx
import typer
from rich.table import Table

from pilothouse.cli.common import ConfigOption, console, fail, settings_from
from pilothouse.telemetry.config import parse_duration
from pilothouse.telemetry.rules import render_rules_yaml

app = typer.Typer(help="Service level objectives.", no_args_is_help=True)


@app.command()
def status(
    base_url: str = typer.Option(
        "http://127.0.0.1:4000", "--base-url", help="Gateway to ask for live burn rates."
    ),
    admin_key: str = typer.Option(
        ...,
        "--admin-key",
        envvar="PILOTHOUSE_ADMIN_KEY",
        help="Admin key (or set PILOTHOUSE_ADMIN_KEY).",
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="Config file: refuse early when it has no slo.objectives.",
    ),
) -> None:
    """SLI, error budget left and burn rates, as the gateway evaluates them now.

    Exits 1 when no objectives are configured (an empty table would read as healthy).
    """
    if config is not None and not settings_from(config).slo.objectives:
        fail(f"{config}: no SLOs configured: add slo.objectives", code=1)
    try:
        resp = httpx.get(
            base_url.rstrip("/") + "/admin/slo",
            headers={"Authorization": f"Bearer {admin_key}"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        fail(f"cannot reach {base_url}: {exc}")
    if resp.status_code != 200:
        fail(f"{base_url} answered {resp.status_code}: {resp.text[:200]}")
    body = resp.json()
    if not body["data"]:
        fail(f"{base_url} has no SLOs configured: add slo.objectives", code=1)
    # Shortest window first: 5m, 30m, 1h, 6h, 3d.
    windows = sorted({w for s in body["data"] for w in s["burn_rates"]}, key=parse_duration)
    table = Table(
        "slo",
        "alias",
        "sli",
        "objective",
        "SLI now",
        "budget left",
        *[f"burn {w}" for w in windows],
    )
    for s in body["data"]:
        sli = "-" if s["sli_value"] is None else f"{s['sli_value']:.4%}"
        table.add_row(
            s["name"],
            s["alias"],
            s["sli"],
            f"{s['objective']:.3%}",
            sli,
            f"{s['error_budget_remaining']:.1%}",
            *[f"{s['burn_rates'].get(w, 0):.2f}" for w in windows],
        )
    console.print(table)
    for alert in body["firing"]:
        console.print(f"[red]FIRING[/] {alert['severity']}: {alert['summary']}")


@app.command()
def rules(
    config: Path | None = ConfigOption,
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to a file."),
) -> None:
    """Prometheus recording and alerting rules equivalent to the in-gateway alerts."""
    settings = settings_from(config)
    if not settings.slo.objectives:
        fail("no SLOs in the config: add slo.objectives first")
    text = render_rules_yaml(settings.slo.objectives, settings.slo.alerts)
    if output is None:
        print(text, end="")
    else:
        output.write_text(text)
        console.print(f"wrote {output}")
