"""``pilothouse eval run | list | show | compare | calibrate``.

Exit codes for ``run``: 0 the gates pass, 1 a gate failed, 2 the run could not
be completed or judged (bad suite, target down, too many errors), 130 on
Ctrl-C (finished cases are saved; ``--resume RUN_ID`` continues).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer

from pilothouse.cli.common import console, err_console, fail, settings_from
from pilothouse.config.schema import Settings
from pilothouse.errors import PilothouseError

T = TypeVar("T")
app = typer.Typer(help="Evaluate models and apps: suites, statistics, gates.", no_args_is_help=True)

ConfigOpt = typer.Option(
    None, "--config", "-c", help="Gateway config: runs the gateway in process."
)
BaseUrlOpt = typer.Option(None, "--base-url", help="A running gateway, e.g. http://127.0.0.1:4000")
ApiKeyOpt = typer.Option(None, "--api-key", envvar="PILOTHOUSE_API_KEY", help="Key for --base-url.")
StoreOpt = typer.Option(None, "--store", help="Store URL (default: the config's store.url).")
TraceUrlOpt = typer.Option(
    None,
    "--trace-url",
    help="Link template for request ids, e.g. https://console/traces/{request_id}",
)


@dataclass(frozen=True, slots=True)
class Where:
    """Where the gateway and the store are, as the options say."""

    settings: Settings
    base_url: str | None
    api_key: str | None
    store_url: str


def where(
    config: Path | None, base_url: str | None, api_key: str | None, store: str | None
) -> Where:
    if config is not None and base_url is not None:
        fail("use either --config (in-process gateway) or --base-url (running gateway), not both")
    settings = settings_from(config)
    return Where(settings, base_url, api_key, store or settings.store.url)


@contextlib.asynccontextmanager
async def open_store(place: Where) -> AsyncIterator[Any]:
    from pilothouse.evals.store import EvalStore
    from pilothouse.store.db import create_engine, migrate, pending_migrations, redact_url

    engine = create_engine(place.store_url)
    try:
        if place.settings.store.migrate or place.store_url != place.settings.store.url:
            await migrate(engine)
        elif await pending_migrations(engine):
            raise PilothouseError(
                f"store {redact_url(place.store_url)} needs migrations; run `pilothouse db upgrade`"
            )
        yield EvalStore(engine)
    finally:
        await engine.dispose()


def run_async(fn: Callable[[], Awaitable[T]], on_interrupt: Callable[[], str] | None = None) -> T:
    """Run ``fn``; pilothouse errors → one line + exit 2; Ctrl-C → exit 130 with a hint."""
    try:
        return asyncio.run(fn())  # type: ignore[arg-type]
    except PilothouseError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        hint = on_interrupt() if on_interrupt else "interrupted"
        err_console.print(f"[yellow]{hint}[/]", highlight=False)
        raise typer.Exit(130) from None
    raise AssertionError("unreachable")


@app.command("run")
def run_cmd(
    suite_path: Path = typer.Argument(..., metavar="SUITE", help="Suite YAML file."),
    config: Path | None = ConfigOpt,
    base_url: str | None = BaseUrlOpt,
    api_key: str | None = ApiKeyOpt,
    store: str | None = StoreOpt,
    baseline: str | None = typer.Option(None, "--baseline", help="Run id, 'last', or run.json."),
    junit: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here."),
    html: Path | None = typer.Option(None, "--html", help="Write the HTML report here."),
    md: Path | None = typer.Option(None, "--md", help="Write the Markdown report here."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the JSON report here."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N cases."),
    resume: str | None = typer.Option(None, "--resume", help="Continue an interrupted run."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Call the target for every case."),
    trace_url: str | None = TraceUrlOpt,
) -> None:
    """Run a suite through the gateway, score it, gate it, and write reports."""
    from pilothouse.evals.suite import load_suite

    place = where(config, base_url, api_key, store)
    started: list[str] = []

    async def go() -> int:
        suite = load_suite(suite_path, env=dict(os.environ))
        async with open_store(place) as eval_store, _link(place, suite.needs_gateway) as link:
            return await _run(
                suite,
                eval_store,
                link,
                place,
                started,
                baseline=baseline,
                limit=limit,
                resume=resume,
                no_cache=no_cache,
                reports=(md, html, junit, json_out),
                trace_url=trace_url,
            )

    def hint() -> str:
        if not started:
            return "interrupted"
        return f"interrupted; finished cases are saved. Continue with: --resume {started[0]}"

    code = run_async(go, hint)
    raise typer.Exit(code)


@contextlib.asynccontextmanager
async def _link(place: Where, needed: bool) -> AsyncIterator[Any]:
    from pilothouse.evals.link import open_link

    if not needed:
        yield None
        return
    if place.base_url is not None:
        async with open_link(base_url=place.base_url, api_key=place.api_key) as link:
            yield link
        return
    async with open_link(settings=place.settings) as link:
        yield link


async def _run(
    suite: Any,
    eval_store: Any,
    link: Any,
    place: Where,
    started: list[str],
    *,
    baseline: str | None,
    limit: int | None,
    resume: str | None,
    no_cache: bool,
    reports: tuple[Path | None, ...],
    trace_url: str | None,
) -> int:
    from pilothouse.evals.baseline import load_baseline
    from pilothouse.evals.console import print_report, run_progress
    from pilothouse.evals.reports import ReportData, write_reports
    from pilothouse.evals.runner import RunOptions, SuiteRun

    base_record, base_ref = (None, None)
    if baseline is not None:
        base_record, base_ref = await load_baseline(baseline, eval_store)
    if link is not None:
        aliases = {s.config.model for s in suite.scorers if s.config.type == "judge"}
        if getattr(suite.target, "model", None):
            aliases.add(suite.target.model)
        await link.check(aliases)
    options = RunOptions(
        limit=limit,
        use_cache=not no_cache,
        resume=resume,
        baseline=base_record,
        baseline_ref=base_ref,
    )

    def announce(info: Any) -> None:
        from pilothouse.store.db import redact_url

        started.append(info.id)
        store_text = redact_url(place.store_url)
        err_console.print(f"run [bold]{info.id}[/] · store {store_text}", highlight=False)

    options.on_open = announce
    with run_progress(err_console, suite.name) as progress:
        options.on_start = progress.on_start
        options.on_sample = progress.on_sample
        outcome = await SuiteRun(suite, eval_store, link, options).execute()
    data = ReportData(
        outcome.record,
        outcome.summary,
        outcome.gates,
        outcome.problems,
        outcome.exit_code,
        trace_url,
    )
    print_report(console, data)
    md, html, junit, json_out = reports
    for path in write_reports(data, markdown=md, html=html, junit=junit, json=json_out):
        err_console.print(f"wrote {path}", highlight=False)
    if outcome.review_items:
        err_console.print(
            f"{outcome.review_items} item(s) queued for review: pilothouse review next"
        )
    return outcome.exit_code


@app.command("list")
def list_cmd(
    suite: str | None = typer.Option(None, "--suite", help="Only runs of this suite."),
    limit: int = typer.Option(20, "--limit", min=1, help="Most runs to show."),
    config: Path | None = ConfigOpt,
    store: str | None = StoreOpt,
) -> None:
    """List recent runs."""
    from pilothouse.evals.console import runs_table

    place = where(config, None, None, store)

    async def go() -> Any:
        async with open_store(place) as eval_store:
            return await eval_store.list_runs(suite=suite, limit=limit)

    console.print(runs_table(run_async(go)))


async def _report_data(
    eval_store: Any, ref: str, trace_url: str | None, baseline_ref: str | None = None
) -> Any:
    import msgspec

    from pilothouse.evals.analysis import summarise
    from pilothouse.evals.baseline import load_baseline, looks_like_file
    from pilothouse.evals.gates import evaluate_gates, exit_code
    from pilothouse.evals.reports import ReportData
    from pilothouse.evals.suite import GateSpec

    if looks_like_file(ref):
        from pilothouse.evals.reports.json_report import load_run_json

        record = load_run_json(Path(ref))
    else:
        record = await eval_store.load_run(await eval_store.resolve_run_id(ref))
    baseline = None
    wanted = baseline_ref or record.info.baseline_id
    if wanted:
        with contextlib.suppress(PilothouseError):
            baseline, wanted = await load_baseline(wanted.removeprefix("file:"), eval_store)
            record.info.baseline_id = wanted
    stored = record.info.summary or {}
    gates_spec = [msgspec.convert(g["gate"], GateSpec) for g in stored.get("gates", [])]
    stats = {"resamples": record.info.bootstrap, "seed": record.info.seed}
    summary = summarise(record, baseline, **stats)
    gates = evaluate_gates(gates_spec, record, summary, baseline, **stats)
    problems = list(stored.get("problems", []))
    if record.info.status not in ("completed", "incomplete"):
        problems.append(f"run status is {record.info.status}")
    code = exit_code(gates, complete=not problems)
    return ReportData(record, summary, gates, problems, code, trace_url)


@app.command("show")
def show_cmd(
    run_ref: str = typer.Argument(..., metavar="RUN", help="Run id (or prefix, 'last', run.json)."),
    config: Path | None = ConfigOpt,
    store: str | None = StoreOpt,
    junit: Path | None = typer.Option(None, "--junit", help="Write a JUnit XML report here."),
    html: Path | None = typer.Option(None, "--html", help="Write an HTML report here."),
    md: Path | None = typer.Option(None, "--md", help="Write a Markdown report here."),
    json_out: Path | None = typer.Option(None, "--json", help="Write a JSON report here."),
    trace_url: str | None = TraceUrlOpt,
) -> None:
    """Show a stored run (and regenerate its reports)."""
    from pilothouse.evals.console import kv, print_report
    from pilothouse.evals.reports import write_reports
    from pilothouse.evals.reports.text import target_text

    place = where(config, None, None, store)

    async def go() -> Any:
        async with open_store(place) as eval_store:
            return await _report_data(eval_store, run_ref, trace_url)

    data = run_async(go)
    info = data.record.info
    kv(
        console,
        [
            ("run", info.id),
            ("suite", f"{info.suite} ({info.suite_path})"),
            ("status", info.status),
            ("target", target_text(info)),
            ("gateway", info.gateway),
            ("started", info.started_at),
            ("finished", info.finished_at),
        ],
    )
    print_report(console, data)
    for path in write_reports(data, markdown=md, html=html, junit=junit, json=json_out):
        err_console.print(f"wrote {path}", highlight=False)


@app.command("compare")
def compare_cmd(
    baseline_ref: str = typer.Argument(..., metavar="A", help="Baseline run (id or run.json)."),
    current_ref: str = typer.Argument(..., metavar="B", help="Run to compare with A."),
    config: Path | None = ConfigOpt,
    store: str | None = StoreOpt,
    md: Path | None = typer.Option(None, "--md", help="Write the comparison as Markdown."),
    json_out: Path | None = typer.Option(None, "--json", help="Write a JSON report here."),
) -> None:
    """Paired comparison of run B against baseline A: changes, CIs, p-values, flips."""
    from pilothouse.evals.console import print_report
    from pilothouse.evals.reports import write_reports

    place = where(config, None, None, store)

    async def go() -> Any:
        async with open_store(place) as eval_store:
            return await _report_data(eval_store, current_ref, None, baseline_ref=baseline_ref)

    data = run_async(go)
    if not data.summary.comparisons:
        fail(f"runs {baseline_ref} and {current_ref} share no scored case")
    print_report(console, data)
    for path in write_reports(data, markdown=md, json=json_out):
        err_console.print(f"wrote {path}", highlight=False)


@app.command("calibrate")
def calibrate_cmd(
    suite_path: Path = typer.Argument(..., metavar="SUITE"),
    labels: Path = typer.Option(..., "--labels", help="Human labels JSONL (review export)."),
    scorer: str | None = typer.Option(
        None, "--scorer", help="Scorer to calibrate (default: judges)."
    ),
    config: Path | None = ConfigOpt,
    base_url: str | None = BaseUrlOpt,
    api_key: str | None = ApiKeyOpt,
    json_out: Path | None = typer.Option(None, "--json", help="Write the results as JSON."),
    min_kappa: float | None = typer.Option(None, "--min-kappa", help="Exit 1 below this kappa."),
) -> None:
    """Agreement, Cohen's kappa, confusion matrix and disagreements: judge vs humans."""
    from pilothouse.evals.calibrate import calibrate, load_labels
    from pilothouse.evals.console import calibration_tables
    from pilothouse.evals.scorers.base import ScoreContext
    from pilothouse.evals.suite import load_suite

    place = where(config, base_url, api_key, None)

    async def go() -> Any:
        suite = load_suite(suite_path, env=dict(os.environ))
        rows = load_labels(labels)
        async with _link(place, True) as link:
            return await calibrate(suite, rows, ScoreContext(chat=_chat(link)), scorer=scorer)

    results = run_async(go)
    calibration_tables(console, results)
    if json_out is not None:
        import dataclasses

        import orjson

        json_out.write_bytes(
            orjson.dumps([dataclasses.asdict(r) for r in results], option=orjson.OPT_INDENT_2)
        )
    if min_kappa is not None and any(r.kappa is None or r.kappa < min_kappa for r in results):
        raise typer.Exit(1)


def _chat(link: Any) -> Any:
    async def chat(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Any:
        return await link.chat(model, messages, params)

    return chat
