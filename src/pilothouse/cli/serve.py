"""``pilothouse serve``: run the gateway under uvicorn (uvloop + httptools).

Migrations run once here, before any worker starts, so several workers never
race on the schema. SIGTERM: uvicorn stops accepting, in-flight requests
finish, then the lifespan drains the ledger. SIGHUP reloads the config.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import typer
import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from pilothouse.cli.common import console, fail, run, settings_from
from pilothouse.config.load import load_settings, with_overrides
from pilothouse.config.schema import Secret, Settings
from pilothouse.errors import PilothouseError
from pilothouse.gateway.app import build_app
from pilothouse.gateway.runtime import Runtime
from pilothouse.limits.keys import KeyStore
from pilothouse.store.db import create_engine, migrate, pending_migrations, redact_url
from pilothouse.telemetry.metrics import prepare_multiprocess_dir

CONFIG_ENV = "PILOTHOUSE_CONFIG"  # only for handing the path to worker processes
METRICS_ENV = "PILOTHOUSE_METRICS_DIR"  # the shared Prometheus multiprocess directory
BIND_ENV = "PILOTHOUSE_BIND"  # host:port, for the workers' ready line
log = logging.getLogger("pilothouse.serve")


async def _prepare_store(settings: Settings) -> None:
    engine = create_engine(settings.store.url)
    try:
        if settings.store.migrate:
            await migrate(engine)
        elif await pending_migrations(engine):
            fail(
                f"store {redact_url(settings.store.url)} needs migrations and store.migrate is "
                "false; run `pilothouse db upgrade` first"
            )
    except PilothouseError:
        raise
    except Exception as exc:
        fail(f"cannot open store {redact_url(settings.store.url)}: {exc}")
    finally:
        await engine.dispose()


DEV_KEY_TTL = timedelta(days=1)
DEV_KEY_MARK = "serve --dev"


async def _create_dev_key(settings: Settings) -> str:
    """A fresh development key that expires in a day; earlier runs' dev keys are revoked.

    The secret is only ever shown once (the store keeps a hash), so a key cannot be reused
    across runs: instead each run leaves exactly one live, expiring development key.
    """
    engine = create_engine(settings.store.url)
    try:
        store = KeyStore(engine)
        for old in await store.list_all():
            if (
                old.name == settings.limits.dev_key_name
                and (old.metadata or {}).get("created_by") == DEV_KEY_MARK
            ):
                await store.revoke(old.id, actor=DEV_KEY_MARK)
        expires = (datetime.now(UTC) + DEV_KEY_TTL).isoformat(timespec="seconds")
        _record, secret = await store.create(
            {
                "name": settings.limits.dev_key_name,
                "metadata": {"created_by": DEV_KEY_MARK},
                "expires_at": expires,
            },
            actor=DEV_KEY_MARK,
        )
        return secret
    finally:
        await engine.dispose()


def _install_sighup(rt: Runtime) -> None:
    def reload() -> None:
        async def go() -> None:
            source = rt.settings.source
            if source.startswith("<"):
                return
            try:
                await rt.reload(rt.reread())
                log.warning("config reloaded from %s", source)
            except PilothouseError as exc:
                log.error("config reload refused, keeping the running config: %s", exc.message)

        rt.spawn(go())

    # Not available off the main thread (tests) or on some platforms: reload via the API then.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


def make_app(
    settings: Settings, ready_line: str | None = None, runtime: Runtime | None = None
) -> Starlette:
    rt = runtime or Runtime(settings)
    app = build_app(settings, runtime=rt)
    original = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Starlette) -> AsyncIterator[None]:
        async with original(a):
            _install_sighup(rt)
            # Everything built at start-up lives for the whole process: keep it out of
            # the cyclic GC's full collections, which otherwise stall requests.
            gc.collect()
            gc.freeze()
            gc.set_threshold(*settings.server.gc_threshold)
            if ready_line:  # workers: the supervisor already holds the listening socket
                print(ready_line, flush=True)
            yield

    app.router.lifespan_context = lifespan
    return app


class ReadyServer(uvicorn.Server):
    """Prints the banner only once the socket accepts connections (scripts wait on it).

    On SIGTERM it first serves on for ``server.drain_delay_s`` with ``/readyz``
    answering 503, so a load balancer takes the replica out of rotation before
    the socket closes; otherwise a request the balancer sends in that gap meets
    a closed connection.
    """

    def __init__(self, config: uvicorn.Config, banner: list[str], runtime: Runtime) -> None:
        super().__init__(config)
        self.banner = banner
        self.runtime = runtime

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        delay = self.runtime.settings.server.drain_delay_s
        if delay > 0:
            self.runtime.leaving = True
            logging.getLogger("pilothouse").info(
                "SIGTERM: serving %.1fs more while /readyz reports draining", delay
            )
            await asyncio.sleep(delay)
        await super().shutdown(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            for line in self.banner:
                print(line, flush=True)


def listening_socket(config: uvicorn.Config) -> socket.socket:
    """The workers' shared socket, already listening when the first worker starts.

    uvicorn's supervisor only binds it; each worker calls ``listen()`` after its
    lifespan, which is also where our ready line is printed. In between, and
    while every worker restarts, a client was refused (ECONNREFUSED) instead of
    waiting in the backlog for a worker to accept.
    """
    sock = config.bind_socket()
    sock.listen(config.backlog)
    return sock


def worker_app() -> Starlette:
    """Factory for ``--workers N``: each worker process loads the same config file."""
    path = os.environ.get(CONFIG_ENV) or None
    overrides = launch_overrides(metrics_dir=os.environ.get(METRICS_ENV))
    settings = overrides(load_settings(path))
    where = os.environ.get(BIND_ENV, "")
    return make_app(
        settings,
        f"pilothouse ready on http://{where}  (worker {os.getpid()})",
        Runtime(settings, overrides),
    )


def launch_overrides(
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    admin_key: Secret | None = None,
    metrics_dir: str | None = None,
) -> Callable[[Settings], Settings]:
    """What this launch sets over the config file, as a function a reload applies again.

    Migrations already ran before the app started; ``admin_key`` is ``--dev``'s
    generated key, kept only while the file names none.
    """

    def apply(settings: Settings) -> Settings:
        settings = with_overrides(settings, host=host, port=port, workers=workers)
        server = settings.server
        if admin_key is not None and server.admin_key is None:
            server = msgspec.structs.replace(server, admin_key=admin_key)
        telemetry = settings.telemetry
        if metrics_dir is not None:
            telemetry = msgspec.structs.replace(telemetry, metrics_multiprocess_dir=metrics_dir)
        return msgspec.structs.replace(
            settings,
            server=server,
            store=msgspec.structs.replace(settings.store, migrate=False),
            telemetry=telemetry,
        )

    return apply


def serve(
    config: Path | None = typer.Option(None, "--config", "-c", help="Config file (YAML)."),
    host: str | None = typer.Option(None, help="Bind address (default from config: 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default from config: 4000)."),
    workers: int | None = typer.Option(None, help="Worker processes (needs redis.url if > 1)."),
    dev: bool = typer.Option(False, "--dev", help="Create and print a development key."),
) -> None:
    """Serve the gateway. Without --config: the embedded default (local model, SQLite)."""
    settings = with_overrides(settings_from(config), host=host, port=port, workers=workers)
    n_workers = settings.server.workers
    if n_workers > 1 and not settings.redis.url:
        fail(
            "--workers > 1 needs redis.url: without it every worker would enforce its own "
            "rate limits, budgets and cache"
        )
    run(lambda: _prepare_store(settings))
    banner: list[str] = []
    base = f"http://{settings.server.host}:{settings.server.port}"
    dev_admin: Secret | None = None
    if dev:
        if settings.server.admin_key is None:
            admin = "ph-admin-" + secrets.token_urlsafe(24)
            dev_admin = Secret(admin)
            settings = msgspec.structs.replace(
                settings, server=msgspec.structs.replace(settings.server, admin_key=dev_admin)
            )
            banner.append(f"admin key (this run only): {admin}")
        secret = run(lambda: _create_dev_key(settings))
        alias = next(iter(settings.models), "local")
        banner += [
            f"development key (shown once): {secret}",
            "  (expires in a day; development keys of earlier runs are revoked)",
            "try it:",
            f"  curl -s {base}/v1/chat/completions -H 'Authorization: Bearer {secret}' "
            f"-H 'Content-Type: application/json' "
            f'-d \'{{"model": "{alias}", "messages": [{{"role": "user", '
            f'"content": "Say hello in five words."}}], "max_tokens": 32}}\'',
        ]
    # Last, so scripts that wait for this line have the whole banner.
    banner.append(f"pilothouse ready on {base}  (models: {', '.join(settings.models)})")
    overrides = launch_overrides(host=host, port=port, workers=workers, admin_key=dev_admin)
    settings = overrides(settings)
    common: dict[str, Any] = {
        "host": settings.server.host,
        "port": settings.server.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": settings.server.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": int(settings.server.drain_timeout_s),
        "lifespan": "on",
        "proxy_headers": False,  # bound to loopback by default; no X-Forwarded-* trust
        "server_header": False,
        # h11's own bound on a request head; httptools has none, so HeaderLimits enforces both.
        "h11_max_incomplete_event_size": settings.server.max_header_bytes,
    }
    if n_workers > 1:
        if config is not None:
            os.environ[CONFIG_ENV] = str(config.resolve())
        # One /metrics view across workers: prometheus_client's multiprocess mode.
        metrics_dir = settings.telemetry.metrics_multiprocess_dir or tempfile.mkdtemp(
            prefix="pilothouse-metrics-"
        )
        os.environ.update(prepare_multiprocess_dir(metrics_dir))
        os.environ[METRICS_ENV] = metrics_dir
        os.environ[BIND_ENV] = f"{settings.server.host}:{settings.server.port}"
        uv_config = uvicorn.Config(
            "pilothouse.cli.serve:worker_app",
            factory=True,
            workers=n_workers,
            timeout_worker_healthcheck=settings.server.worker_healthcheck_s,
            **common,
        )
        with contextlib.suppress(KeyboardInterrupt):
            Multiprocess(uv_config, sockets=[listening_socket(uv_config)]).run()
        return
    console.print(f"loading {len(settings.providers)} provider(s)…", highlight=False)
    rt = Runtime(settings, overrides)
    ReadyServer(uvicorn.Config(make_app(settings, runtime=rt), **common), banner, rt).run()
