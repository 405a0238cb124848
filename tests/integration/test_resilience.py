"""Nothing is lost: store outages spool and replay, SIGTERM drains, reloads keep serving."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import (
    ADMIN_KEY,
    ProcessGateway,
    ThreadedGateway,
    base_config,
    free_port,
    write_config,
)
from tests.support.ledger import stored_rows
from tests.support.services import psql, psql_values

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "keep every record"}]
PG_CTL = ["pg_ctlcluster", "--skip-systemctl-redirect"]


def pg_cluster() -> list[str]:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    return [version, "main"]


def test_usage_spools_while_postgres_is_down_and_replays(postgres_url: str, tmp_path: Path) -> None:
    if not Path("/etc/postgresql").exists():
        pytest.skip("no local PostgreSQL cluster to stop")
    from pilothouse.config.load import parse_settings

    config = base_config(postgres_url, tmp_path)
    gw = ThreadedGateway(parse_settings(config)).start()
    spool = tmp_path / "spool.jsonl"
    try:
        key = gw.create_key()
        headers = {"Authorization": f"Bearer {key}"}
        body = {"model": "chat", "messages": MESSAGES}
        before = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers)
        assert before.status_code == 200
        subprocess.run([*PG_CTL, *pg_cluster(), "stop", "-m", "fast"], check=True)
        try:
            during = [
                httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
                for _ in range(5)
            ]
            assert all(r.status_code == 200 for r in during), "hot path needs no database"
            ready = httpx.get(gw.url + "/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["store"] != "ok"
            with gw.admin() as admin:
                assert admin.get("/admin/keys").status_code >= 500  # store-backed admin call
            assert gw.runtime is not None
            # Force the queued rows out: they cannot reach the store, so they hit the spool.
            fut = asyncio.run_coroutine_threadsafe(gw.runtime.ledger.flush(), gw.server_loop())
            fut.result(timeout=60)
            assert spool.exists() and len(spool.read_text().splitlines()) >= 5
        finally:
            subprocess.run([*PG_CTL, *pg_cluster(), "start"], check=True)
    finally:
        gw.stop()  # shutdown drains the queue and replays the spool
    rows = stored_rows(postgres_url)
    ids = {r["request_id"] for r in rows}
    assert before.headers["x-request-id"] in ids
    assert {r.headers["x-request-id"] for r in during} <= ids
    assert len(rows) == len(ids), "replay must not duplicate rows"
    assert not spool.exists()


def test_sigterm_finishes_in_flight_requests_and_drains(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/ph.db"
    config = base_config(
        store,
        tmp_path,
        providers={"chaos": {"type": "chaos", "latency_ms": {"dist": "fixed", "value": 1500}}},
    )
    gw = ProcessGateway(write_config(tmp_path / "c.yaml", config), free_port(), {}).start()
    try:
        key = httpx.post(
            gw.url + "/admin/keys",
            json={"name": "t"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ).json()["key"]
        result: dict[str, httpx.Response] = {}

        def slow_call() -> None:
            result["r"] = httpx.post(
                gw.url + "/v1/chat/completions",
                json={"model": "chat", "messages": MESSAGES},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )

        caller = threading.Thread(target=slow_call)
        caller.start()
        for _ in range(10_000):  # wait (bounded) until the gateway holds the request
            if httpx.get(gw.url + "/readyz").json()["in_flight"] >= 1:
                break
        else:
            pytest.fail("request never became in-flight")
        gw.signal(signal.SIGTERM)
        caller.join(60)
        assert result["r"].status_code == 200
        # uvicorn re-raises SIGTERM after a clean shutdown, as supervisors expect
        assert gw.wait(60) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in "".join(gw.output)
    finally:
        gw.stop()
    rows = stored_rows(store)
    assert result["r"].headers["x-request-id"] in {r["request_id"] for r in rows}


def test_reload_applies_good_config_and_refuses_bad(tmp_path: Path) -> None:
    config = base_config(f"sqlite:///{tmp_path}/ph.db", tmp_path)
    path = write_config(tmp_path / "c.yaml", config)
    gw = ProcessGateway(path, free_port(), {}).start()
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        key = httpx.post(gw.url + "/admin/keys", json={"name": "t"}, headers=admin).json()["key"]
        headers = {"Authorization": f"Bearer {key}"}
        config["models"]["fresh"] = {"targets": [{"provider": "chaos", "model": "m"}]}
        write_config(path, config)
        gw.signal(signal.SIGHUP)
        models: list[str] = []
        for _ in range(10_000):  # bounded wait for the reload to land
            models = [
                m["id"] for m in httpx.get(gw.url + "/v1/models", headers=headers).json()["data"]
            ]
            if "fresh" in models:
                break
        assert "fresh" in models
        path.write_text("models: {broken: {targets: []}}\nwhat: ever\n")
        bad = httpx.post(gw.url + "/admin/reload", headers=admin)
        assert bad.status_code == 400 and "what" in bad.json()["error"]["message"]
        still = httpx.post(
            gw.url + "/v1/chat/completions",
            headers=headers,
            json={"model": "fresh", "messages": MESSAGES},
        )
        assert still.status_code == 200
    finally:
        gw.stop()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilothouse.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_migrations_on_postgres_and_refusal_when_told_not_to(
    postgres_url: str, tmp_path: Path
) -> None:
    config = base_config(postgres_url, tmp_path, store={"migrate": False})
    path = write_config(tmp_path / "c.yaml", config)
    refused = run_cli("serve", "--config", str(path), "--port", str(free_port()))
    assert refused.returncode == 2
    assert "needs migrations" in refused.stderr and "pilothouse db upgrade" in refused.stderr
    for _ in range(2):  # idempotent
        upgraded = run_cli("db", "upgrade", "--config", str(path))
        assert upgraded.returncode == 0, upgraded.stderr
    psql_tables = psql_values(
        postgres_url.rsplit("/", 1)[1],
        "select tablename from pg_tables where schemaname='public' order by 1",
    )
    assert {"alembic_version", "api_keys", "usage_records"} <= set(psql_tables)
    psql("SELECT 1")


def test_workers_without_redis_refuse_to_start(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", base_config(f"sqlite:///{tmp_path}/x.db", tmp_path))
    result = run_cli("serve", "--config", str(path), "--workers", "2")
    assert result.returncode == 2 and "needs redis.url" in result.stderr


def test_bad_config_refuses_to_start_with_key_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("server: {port: 4000, colour: blue}\n")
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}: server.colour: unknown key" in result.stderr
    assert "Traceback" not in result.stderr
    check = run_cli("config", "check", str(path))
    assert check.returncode == 2 and "colour" in check.stderr
