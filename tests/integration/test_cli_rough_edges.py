"""CLI rough edges (issue 16): one-line errors, helpful refusals, whole ids, honest output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pilothouse.cli.main import app
from tests.support.gateway import ADMIN_KEY, base_config, free_port, running_gateway, write_config

pytestmark = pytest.mark.integration


def cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilothouse.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": str(columns), "TERM": "dumb"},
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _commands(command: Any, path: list[str]) -> Any:
    subs = getattr(command, "commands", None)
    if subs:
        for name, sub in subs.items():
            yield from _commands(sub, [*path, name])
    else:
        yield path, command


ROOT = typer.main.get_command(app)
ALL = list(_commands(ROOT, []))


def test_bad_values_are_one_error_line_with_the_allowed_values(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", base_config(f"sqlite:///{tmp_path}/x.db", tmp_path))
    line = one_error_line(cli("keys", "create", "--name", "x", "--metadata", "{team:x}"))
    assert "--metadata must be a JSON object" in line
    line = one_error_line(cli("keys", "create", "--name", "x", "--budget-period", "dya"))
    assert "total, day, month" in line and "did you mean 'day'" in line
    line = one_error_line(cli("keys", "create", "--name", "x", "--role", "admn"))
    assert "admin, operator, viewer, finance" in line and "did you mean 'admin'" in line
    line = one_error_line(
        cli("keys", "create", "--name", "x", "--models", "chta", "--config", str(path))
    )
    assert "unknown model alias 'chta'" in line and "did you mean 'chat'" in line
    line = one_error_line(cli("usage", "--group-by", "tema", "--config", str(path)))
    assert "key, team, user" in line and "did you mean 'team'" in line
    line = one_error_line(cli("keys", "creat"))
    assert "Did you mean 'create'" in line
    one_error_line(cli("traces", "list", "--limit", "zero"))
    listed = cli("keys", "list", "--config", str(path))
    assert listed.returncode == 0 and "x" not in listed.stdout.split("revoked", 1)[1].strip("│┃ \n")


_JUNK = st.one_of(
    st.sampled_from(["{team:x}", "nosuch", "-1", "0", "", "[]", "null", "1e999", "7q", "..", "*"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
)
# Commands that only read or write the store (serving, workers and eval runs would run for real;
# `privacy erase` documents exit 3 for "nothing to erase").
_FUZZED = [
    (path, cmd)
    for path, cmd in ALL
    if path[0] in ("keys", "usage", "traces", "report", "slo", "audit", "config")
    and path[-1] not in ("serve",)
]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_arguments_never_raise_a_traceback(data: st.DataObject, tmp_path: Path) -> None:
    path, command = data.draw(st.sampled_from(_FUZZED), label="command")
    config = tmp_path / "fuzz.yaml"
    if not config.exists():
        write_config(config, base_config(f"sqlite:///{tmp_path}/fuzz.db", tmp_path))
    args = list(path)
    for param in command.params:
        if param.param_type_name == "argument":
            args.append(data.draw(_JUNK.filter(lambda s: not s.startswith("-")), label=param.name))
        elif "--config" in param.opts:
            args += ["--config", str(config)]
        elif data.draw(st.booleans(), label=f"use {param.name}"):
            if getattr(param, "is_flag", False):
                args.append(param.opts[0])
            else:
                args += [param.opts[0], data.draw(_JUNK, label=param.name)]
    result = CliRunner().invoke(app, args, env={"PILOTHOUSE_ADMIN_KEY": "ph-nope"})
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        repr(result.exception),
    )
    assert result.exit_code in (0, 1, 2), (args, result.output)
    assert "Traceback" not in result.output, (args, result.output)


def test_help_has_no_bool_labels_and_every_option_is_explained() -> None:
    missing = [
        f"{' '.join(path)} {param.opts[0]}"
        for path, command in ALL
        for param in command.params
        if param.param_type_name == "option" and not param.help
    ]
    assert missing == []
    for path in (["keys", "create"], ["traces", "list"], ["eval", "run"], ["serve"]):
        shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
        assert shown.exit_code == 0, shown.output
        assert "<bool>" not in shown.output and "--help" in shown.output


def test_usage_traces_and_slo_output(store_url: str, tmp_path: Path) -> None:
    config = base_config(
        store_url,
        tmp_path,
        prices={"gpt-4o-mini": {"input": "0.15", "output": "0.60"}},
        slo={"objectives": [{"name": "chat-avail", "alias": "chat", "objective": 0.99}]},
    )
    path = write_config(tmp_path / "c.yaml", config)
    created = cli(
        "keys", "create", "--name", "t", "--metadata", '{"team": "search"}', "-c", str(path)
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    with running_gateway(config) as gw:
        resp = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert resp.status_code == 200
        request_id = resp.headers["x-request-id"]
        with gw.admin() as admin:
            admin.get("/admin/traces")
            admin.get("/admin/usage")
        slo = cli(
            "slo",
            "status",
            "--base-url",
            gw.url,
            "--admin-key",
            ADMIN_KEY,
            "-c",
            str(path),
            columns=200,
        )
        assert slo.returncode == 0, slo.stderr
        header = " ".join(slo.stdout.split())
        burns = re.findall(r"burn (\d+[mhd])", header)
        assert burns == ["5m", "30m", "1h", "6h", "3d"], slo.stdout
        no_slo = write_config(tmp_path / "n.yaml", base_config(store_url, tmp_path))
        refused = cli(
            "slo", "status", "--base-url", gw.url, "--admin-key", ADMIN_KEY, "-c", str(no_slo)
        )
        assert refused.returncode == 1 and "no SLOs configured" in refused.stderr
    by_team = cli("usage", "--group-by", "team", "--json", "-c", str(path))
    assert by_team.returncode == 0, by_team.stderr
    # The key's metadata team, as `report costs --by team` attributes it: the two agree.
    teams = [(r["team"], r["requests"]) for r in orjson.loads(by_team.stdout)["data"]]
    assert teams == [("search", 1)], by_team.stdout
    report = cli("report", "costs", "--by", "team", "-c", str(path))
    assert report.returncode == 0, report.stderr
    assert "search" in report.stdout
    only = cli("usage", "--team-id", "search", "--json", "-c", str(path))
    assert only.returncode == 0 and orjson.loads(only.stdout)["total"]["requests"] == 1
    by_user = cli("usage", "--group-by", "user", "-c", str(path))
    assert by_user.returncode == 0 and "None" not in by_user.stdout
    assert re.search(r"│ -\s+│ 1\s", by_user.stdout), by_user.stdout
    listed = cli("traces", "list", "-c", str(path), columns=80)
    assert listed.returncode == 0 and request_id in listed.stdout, listed.stdout
    wide = cli("traces", "list", "--wide", "-c", str(path), columns=80)
    assert request_id in wide.stdout and "chaos/gpt-4o-mini" in wide.stdout
    team = cli("traces", "list", "--team", "search", "--json", "-c", str(path))
    assert [t["request_id"] for t in orjson.loads(team.stdout)["data"]] == [request_id]
    other = cli("traces", "list", "--team", "ads", "--json", "-c", str(path))
    assert orjson.loads(other.stdout)["data"] == []
    before = cli("traces", "list", "--until", "2000-01-01", "--json", "-c", str(path))
    assert orjson.loads(before.stdout)["data"] == []
    shown = cli("traces", "show", request_id, "-c", str(path), columns=120)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"target\s+chaos/gpt-4o-mini", shown.stdout), shown.stdout
    assert re.search(r"attempts\s+1\b", shown.stdout) and "{'" not in shown.stdout


def test_chaos_serve_says_where_it_listens(tmp_path: Path) -> None:
    options = tmp_path / "chaos.yaml"
    options.write_text("error_rate: 0.0\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pilothouse.cli.main",
            "chaos",
            "serve",
            "-c",
            str(options),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == f"chaos upstream listening on http://127.0.0.1:{port}/v1"
        models = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
        )
        assert models.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_dev_keys_do_not_pile_up(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from pilothouse.cli.common import run
    from pilothouse.cli.serve import _create_dev_key
    from pilothouse.config.load import load_settings
    from pilothouse.limits.keys import KeyStore
    from pilothouse.store.db import create_engine, migrate

    path = write_config(tmp_path / "c.yaml", base_config(f"sqlite:///{tmp_path}/d.db", tmp_path))
    settings = load_settings(path)

    async def live_dev_keys() -> list[Any]:
        engine = create_engine(settings.store.url)
        try:
            return [k for k in await KeyStore(engine).list_all() if k.name == "dev"]
        finally:
            await engine.dispose()

    async def prepare() -> None:
        engine = create_engine(settings.store.url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    run(prepare)
    first = run(lambda: _create_dev_key(settings))
    second = run(lambda: _create_dev_key(settings))
    assert first != second
    keys = run(live_dev_keys)
    assert len(keys) == 1  # the first run's key was revoked, not left unrestricted forever
    expires = keys[0].expires_at
    assert expires is not None and expires <= datetime.now(UTC) + timedelta(days=1)


def test_in_process_gateway_key_is_scoped_short_lived_and_revoked(tmp_path: Path) -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta

    from pilothouse.config.load import load_settings
    from pilothouse.gateway.embedded import embedded_gateway
    from pilothouse.limits.keys import KeyStore

    path = write_config(tmp_path / "c.yaml", base_config(f"sqlite:///{tmp_path}/e.db", tmp_path))
    settings = load_settings(path)

    async def go() -> tuple[Any, list[Any]]:
        async with embedded_gateway(settings, key_name="eval") as gw:
            live = [k for k in await gw.runtime.keys.list_all() if k.name == "eval"]
            resp = await gw.client.post(
                "/chat/completions",
                json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
            )
            assert resp.status_code == 200
            engine = gw.runtime.engine
            store = KeyStore(engine)
        return live, await store.list_all(include_revoked=True)

    live, after = asyncio.run(go())
    assert len(live) == 1 and set(live[0].models or ()) == {"chat"}
    assert live[0].expires_at is not None
    assert live[0].expires_at <= datetime.now(UTC) + timedelta(hours=12)
    assert all(k.revoked for k in after if k.name == "eval")


def test_eval_demo_has_its_own_gateway_store() -> None:
    from pilothouse.config.load import load_settings

    root = Path(__file__).resolve().parents[2]
    recipe = (root / "Makefile").read_text().split("\neval-demo:", 1)[1].split("\n\n", 1)[0]
    match = re.search(r"--config (\S+)", recipe)
    assert match is not None, recipe
    settings = load_settings(root / match.group(1))
    default = load_settings(None)
    assert settings.store.url != default.store.url and "eval-reports/" in settings.store.url
    assert settings.store.spool_path != default.store.spool_path
    assert set(settings.models) == set(default.models)


def test_doctor_probes_each_upstream_with_timing(tmp_path: Path) -> None:
    from tests.support.chaos_upstream import chaos_upstream

    def config(base_url: str) -> Path:
        cfg = base_config(
            f"sqlite:///{tmp_path}/doc.db",
            tmp_path,
            providers={"up": {"type": "openai", "base_url": base_url}},
            models={"chat": {"targets": [{"provider": "up", "model": "gpt-4o-mini"}]}},
        )
        return write_config(tmp_path / "doc.yaml", cfg)

    down = cli("doctor", "-c", str(config(f"http://127.0.0.1:{free_port()}/v1")), columns=200)
    assert down.returncode == 1 and re.search(r"FAIL upstream up: .*ConnectError", down.stdout)
    with chaos_upstream() as url:
        up = cli("doctor", "-c", str(config(url)), columns=200)
    assert up.returncode == 0, up.stdout
    assert re.search(r"ok\s+upstream up: .*/models answered 200 in \d+ ms", up.stdout), up.stdout


def test_reload_refuses_and_names_sections_that_need_a_restart(tmp_path: Path) -> None:
    from pilothouse.config.load import load_settings
    from tests.support.gateway import ThreadedGateway

    cfg = base_config(f"sqlite:///{tmp_path}/r.db", tmp_path)
    path = write_config(tmp_path / "r.yaml", cfg)
    gw = ThreadedGateway(load_settings(path)).start()
    try:
        with gw.admin() as admin:
            same = admin.post("/admin/reload")
            assert same.status_code == 200 and same.json()["reloaded"] is True
            write_config(
                path,
                {
                    **cfg,
                    "models": {**cfg["models"], "chat2": cfg["models"]["chat"]},
                    "online_eval": {"sample_rate": 0.5},
                },
            )
            refused = admin.post("/admin/reload")
            assert refused.status_code == 400, refused.text
            assert "online_eval" in refused.text and "restart" in refused.text
            write_config(path, {**cfg, "models": {**cfg["models"], "chat2": cfg["models"]["chat"]}})
            models = admin.post("/admin/reload")
            assert models.status_code == 200 and "chat2" in models.json()["models"]
    finally:
        gw.stop()


def test_doctor_fails_on_a_provider_library_that_does_not_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.chaos_upstream import chaos_upstream

    monkeypatch.setenv("PH_TEST_KEY", "sk-test")

    # A botocore that cannot be imported, first on the path: what an install without the
    # `bedrock` extra looks like to the bedrock provider.
    shadow = tmp_path / "shadow" / "botocore"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named botocore')\n")
    with chaos_upstream() as url:
        cfg = base_config(
            f"sqlite:///{tmp_path}/doc.db",
            tmp_path,
            providers={
                "chaos": {"type": "chaos"},
                "aws": {"type": "bedrock", "region": "us-east-1"},
                "claude": {"type": "anthropic", "base_url": url, "api_key": "env:PH_TEST_KEY"},
            },
        )
        path = write_config(tmp_path / "doc.yaml", cfg)
        env = {
            **os.environ,
            "COLUMNS": "200",
            "TERM": "dumb",
            "PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")]),
        }
        run = [sys.executable, "-m", "pilothouse.cli.main", "doctor", "-c", str(path)]
        broken = subprocess.run(run, capture_output=True, text=True, timeout=120, env=env)
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert "FAIL provider aws (bedrock): bedrock providers need botocore: pip install " in (
            broken.stdout
        )
        assert "'pilothouse[bedrock]'" in broken.stdout
        assert re.search(
            r"ok\s+upstream claude: .*/v1/models answered 200 in \d+ ms", broken.stdout
        )
        fixed = cli("doctor", "-c", str(path), columns=200)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert re.search(r"ok\s+provider aws \(bedrock\)", fixed.stdout)
    assert "note: upstream aws (bedrock) is not probed" in fixed.stdout


def test_traces_show_nests_an_application_span_under_its_parent() -> None:
    from rich.console import Console

    from pilothouse.cli.traces import _span_tree

    def span(span_id: str, parent: str | None, name: str, start: int, source: str) -> Any:
        return {
            "span_id": span_id, "parent_span_id": parent, "name": name, "start_ns": start,
            "duration_ms": 1.0, "status": "ok", "status_message": None, "source": source,
        }  # fmt: skip

    # Stored in arrival order: the gateway's spans first, then the application's span
    # (sent later over OTLP) that parents them, then an application child of the gateway.
    spans = [
        span("g1", "app", "gateway.request", 2_000_000, "gateway"),
        span("g2", "g1", "provider.call", 3_000_000, "gateway"),
        span("app", "remote", "handle_ticket", 1_000_000, "otlp"),
        span("tool", "g1", "lookup_order", 4_000_000, "otlp"),
    ]
    out = Console(width=120, record=True, color_system=None)
    out.print(_span_tree(spans))
    lines = out.export_text().splitlines()
    depth = {
        name: next(len(line) - len(line.lstrip(" │├└─")) for line in lines if name in line)
        for name in ("handle_ticket", "gateway.request", "provider.call", "lookup_order")
    }
    assert depth["handle_ticket"] < depth["gateway.request"] < depth["provider.call"]
    assert depth["lookup_order"] == depth["provider.call"], lines
    assert next(n for line in lines for n in depth if n in line) == "handle_ticket"
