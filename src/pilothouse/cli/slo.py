"""``pilothouse slo status|rules``: SLO health from a running gateway, and Prometheus rules."""

from __future__ import annotations

from pathlib import Path

import httpx
import typer
from rich.table import Table

from pilothouse.cli.common import ConfigOption, console, fail, settings_from
from pilothouse.telemetry.rules import render_rules_yaml

app = typer.Typer(help="Service level objectives.", no_args_is_help=True)


@app.command()
def status(
    base_url: str = typer.Option("http://127.0.0.1:4000", "--base-url"),
    admin_key: str = typer.Option(
        ...,
        "--admin-key",
        envvar="PILOTHOUSE_ADMIN_KEY",
        help="Admin key (or set PILOTHOUSE_ADMIN_KEY).",
    ),
) -> None:
    """SLI, error budget left and burn rates, as the gateway evaluates them now."""
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
    windows = sorted(
        {w for s in body["data"] for w in s["burn_rates"]}, key=lambda w: (w[-1], int(w[:-1]))
    )
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
