"""The Runtime: every long-lived part of one gateway, built from one Settings.

No module-level singletons: tests build as many isolated gateways in one
process as they like. Start-up and shutdown order lives here; the ASGI
lifespan just calls :meth:`Runtime.start` and :meth:`Runtime.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse import audit
from pilothouse.cache.citations import Citations, MemoryCitations, RedisCitations
from pilothouse.cache.response_cache import (
    MemoryResponseCache,
    RedisResponseCache,
    ResponseCache,
)
from pilothouse.config.fingerprint import config_hash
from pilothouse.config.load import load_settings
from pilothouse.config.schema import Secret, Settings
from pilothouse.costs.anomaly import SpendAnomalyDetector
from pilothouse.costs.budget_alerts import BudgetAlerts
from pilothouse.costs.ledger import UsageLedger
from pilothouse.costs.pricing import PriceTable
from pilothouse.errors import ConfigError, StoreError
from pilothouse.evals.online import OnlineEvaluator, parse_online_config, store_sink
from pilothouse.gateway.guard_calls import GatewayCaller
from pilothouse.gateway.intake import KeySlots
from pilothouse.gateway.responses_store import ResponseStore
from pilothouse.guard.engine import GuardEngine
from pilothouse.guard.redact import Redactor
from pilothouse.guard.scrub import SecretScrubber
from pilothouse.limits.auth_throttle import AuthThrottle, MemoryThrottle, RedisThrottle
from pilothouse.limits.budget import BudgetBackend, MemoryBudgets, RedisBudgets, period_start
from pilothouse.limits.keys import KeyCache, KeyStore
from pilothouse.limits.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from pilothouse.limits.scopes import ScopeCache, ScopeStore, kind_of
from pilothouse.providers.base import Provider, provider_class
from pilothouse.releases import notify as label_notify
from pilothouse.releases import routes as release_routes
from pilothouse.releases.registry import PromptRegistry
from pilothouse.releases.serving import LabelCache
from pilothouse.rollout.manager import RolloutManager
from pilothouse.routing.degrade import DegradeSwitch
from pilothouse.routing.router import Router
from pilothouse.store.db import create_engine, migrate, pending_migrations, redact_url
from pilothouse.store.tables import usage_records
from pilothouse.store.writer_thread import WriterThread, writer_loop
from pilothouse.telemetry.hub import Telemetry
from pilothouse.telemetry.metadata_privacy import MetadataPrivacy

log = logging.getLogger("pilothouse.runtime")
REVOCATIONS = "keys:revoked"
KEY_CHANGES = "keys:changed"


def build_providers(settings: Settings) -> dict[str, Provider]:
    out: dict[str, Provider] = {}
    for name, cfg in settings.provider_configs.items():
        out[name] = provider_class(cfg.type)(name, cfg)
    return out


# Sections the running gateway reads once at start (connections, bind address, workers
# built from them): a reload that changes one refuses rather than claiming success.
RESTART_SECTIONS: tuple[str, ...] = ("server", "store", "redis", "online_eval")


def restart_sections(old: Settings, new: Settings) -> list[str]:
    """The restart-only sections that differ between the running and the new config.

    ``new`` must carry the launch overrides (:attr:`Runtime.launch_overrides`), or
    every value set on the command line would read as a change.
    """
    return [
        name
        for name in RESTART_SECTIONS
        if _canon(getattr(old, name)) != _canon(getattr(new, name))
    ]


def _canon(section: object) -> bytes:
    # Secrets compare by identity; compare their values (never logged or returned).
    def hook(obj: object) -> object:
        if isinstance(obj, Secret):
            return obj.get()
        raise NotImplementedError(type(obj))

    return msgspec.json.encode(section, enc_hook=hook, order="sorted")


def _unchanged(settings: Settings) -> Settings:
    return settings


class Runtime:
    def __init__(
        self,
        settings: Settings,
        launch_overrides: Callable[[Settings], Settings] = _unchanged,
    ) -> None:
        self.settings = settings
        # What `serve` set over the file at launch (--port, --dev's admin key, migrate off):
        # applied again to every re-read file, so a reload neither drops nor "changes" them.
        self.launch_overrides = launch_overrides
        self.engine: AsyncEngine = create_engine(settings.store.url)
        self.redis: Redis | None = (
            Redis.from_url(settings.redis.url) if settings.redis.url else None
        )
        prefix = settings.redis.prefix
        lease_s = settings.limits.reservation_lease_s
        self.keys = KeyStore(self.engine)
        self.prompts = PromptRegistry(self.engine)
        self.responses = ResponseStore(self.engine, self.redis, prefix, self.spawn)
        self.prompt_cache = LabelCache(self.prompts)
        self.rag_store: Any = None  # rag/bundle.py store_of: opened on first RAG request
        from pilothouse.rag.bundle import retriever, store_of  # rag imports this module

        self.prompt_cache.retriever = retriever(self)
        self.key_cache = KeyCache(self.keys)
        self.scopes = ScopeStore(self.engine)
        self.scope_cache = ScopeCache(self.scopes)
        self.limiter: RateLimiter
        self.budgets: BudgetBackend
        self.cache: ResponseCache
        throttle_cfg = settings.server.auth_throttle
        self.auth_throttle = AuthThrottle(
            throttle_cfg,
            RedisThrottle(self.redis, prefix, throttle_cfg)
            if self.redis is not None
            else MemoryThrottle(throttle_cfg),
        )
        if self.redis is not None:
            self.limiter = RedisRateLimiter(self.redis, prefix)
            self.budgets = RedisBudgets(self.redis, prefix, self.spent_from_ledger, lease_s)
        else:
            self.limiter = MemoryRateLimiter()
            self.budgets = MemoryBudgets(self.spent_from_ledger, lease_s)
        if settings.cache.backend == "redis":
            if self.redis is None:
                raise ConfigError(f"{settings.source}: cache.backend: redis needs redis.url")
            self.cache = RedisResponseCache(self.redis, prefix)
        else:
            self.cache = MemoryResponseCache(settings.cache.max_entries)
        # Which cached answers cite which RAG documents (shared when the caches are).
        self.citations: Citations = (
            RedisCitations(self.redis, prefix)
            if settings.cache.backend == "redis" and self.redis is not None
            else MemoryCitations()
        )
        self.prices = PriceTable(settings.prices)
        self.providers = build_providers(settings)
        self.scrubber = SecretScrubber.from_settings(settings)
        self.router = Router(settings, self.providers, scrubber=self.scrubber)
        self.degrade = DegradeSwitch(self.redis, prefix)  # POST /admin/degrade
        self.writer = writer_loop(settings.store, self.engine)
        self.telemetry = Telemetry(settings, self.engine, self.redis, writer=self.writer)
        self.metadata_privacy: MetadataPrivacy = MetadataPrivacy.from_settings(
            settings, Redactor(settings.telemetry.redaction)
        )
        self.ledger = UsageLedger(
            self.engine,
            settings.store.spool_path,
            batch_size=settings.store.batch_size,
            flush_interval_s=settings.store.flush_interval_s,
            queue_size=settings.store.queue_size,
            quarantine=self.telemetry.quarantine,
            stall_after_s=settings.store.writer_stall_s,
            journal=settings.store.journal,
            writer=self.writer,
        )
        self.ledger.health.on_restart = lambda: self.telemetry.metrics.writer_restarted("usage")
        self.telemetry.breakers = self.router.breakers
        costs = settings.costs
        self.spend_anomalies = SpendAnomalyDetector(
            self.engine, costs.anomaly, self.telemetry.alerts
        )
        self.budget_alerts = BudgetAlerts(
            self.engine, costs.budget_alert_thresholds, self.telemetry.alerts
        )
        self._cost_tasks: list[asyncio.Task[None]] = []
        from pilothouse.rag.freshness import FreshnessMonitor

        self.rag_freshness = FreshnessMonitor(
            lambda: self.settings, lambda: store_of(self), self.telemetry.alerts,
            self.telemetry.metrics,
        )  # fmt: skip
        self.rollouts = RolloutManager(
            settings.rollouts,
            self.engine,
            self.redis,
            prefix,
            alert=self.telemetry.alerts.update,
        )
        self.online = self._online_evaluator(settings)
        self.guards = GuardEngine(settings, self.redis, self.telemetry.metrics.registry)
        self.guards.bind(GatewayCaller(self))  # moderation / judge classifiers call through us
        self.semantic_cache: Any = None  # gateway/semantic_stage.py, built in start()
        self.in_flight = 0
        self.key_slots = KeySlots()
        self.draining = False
        self.leaving = False  # SIGTERM seen: /readyz says draining, requests still served
        self.background: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._key_watch: asyncio.Task[None] | None = None
        self._lease_renewal: asyncio.Task[None] | None = None
        self._writer_watch: asyncio.Task[None] | None = None
        self.route_version = release_routes.route_hash(settings.models)
        self.config_hash = config_hash(settings)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self._prepare_store()
        await self.metadata_privacy.load_secret(self.engine)
        await self._record_routes("startup")
        if self.redis is not None:
            try:
                await self.redis.ping()
            except Exception as exc:
                raise StoreError(
                    f"redis at {self.settings.redis.url} is unreachable: {exc}"
                ) from None
            await self.degrade.reload()
            self._listener = asyncio.create_task(self._listen_revocations(), name="revocations")
        await asyncio.gather(*(p.start() for p in self.providers.values()))
        from pilothouse.gateway import semantic_stage

        await semantic_stage.prepare(self)
        if isinstance(self.writer, WriterThread):
            self.writer.start()
        await self.ledger.start()
        await self.telemetry.start()
        await self.rollouts.start()
        if self.online is not None:
            await self.online.start()
        costs = self.settings.costs
        if costs.anomaly.enabled:
            self._cost_tasks.append(
                asyncio.create_task(self.spend_anomalies.run_forever(), name="spend-anomalies")
            )
        if costs.budget_alert_thresholds:
            self._cost_tasks.append(
                asyncio.create_task(
                    self.budget_alerts.run_forever(costs.budget_alert_interval_s),
                    name="budget-alerts",
                )
            )
        if self.settings.rag.collections:  # stale-document gauge and freshness alert
            self._cost_tasks.append(
                asyncio.create_task(self.rag_freshness.run_forever(), name="rag-freshness")
            )
        self._key_watch = asyncio.create_task(self._watch_revocations(), name="key-watch")
        self._lease_renewal = asyncio.create_task(self._renew_leases(), name="budget-leases")
        if isinstance(self.writer, WriterThread):
            self._writer_watch = asyncio.create_task(
                self.writer.watch(self._writers_restarted), name="writer-watch"
            )

    async def _prepare_store(self) -> None:
        url = redact_url(self.settings.store.url)
        try:
            if self.settings.store.migrate:
                await migrate(self.engine)
            else:
                pending = await pending_migrations(self.engine)
                if pending:
                    raise StoreError(
                        f"store {url} needs migrations ({', '.join(pending)}) and "
                        "store.migrate is false: run `pilothouse db upgrade` first"
                    )
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot open store {url}: {type(exc).__name__}: {exc}") from None

    async def stop(self) -> None:
        """Wait for in-flight requests (bounded), then drain queues and close clients."""
        self.draining = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.settings.server.drain_timeout_s)
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        await _cancel(*self._cost_tasks, self._lease_renewal)
        await self.rollouts.stop()
        if self.online is not None:
            await self.online.stop()
        self.guards.close()
        if isinstance(self.writer, WriterThread):
            self.writer.stopping = True  # the watchdog must not restart it now
            await _cancel(self._writer_watch)
        await self.telemetry.stop()
        await self.ledger.stop()
        if isinstance(self.writer, WriterThread):
            await self.writer.stop()
        await _cancel(self._listener, self._key_watch)
        await asyncio.gather(*(p.aclose() for p in self.providers.values()))
        if self.rag_store is not None:
            await self.rag_store.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()

    async def _writers_restarted(self) -> None:
        """A new writer thread runs: start both writers on it and count the restarts."""
        await self.ledger.restart()
        await self.telemetry.traces.restart()
        self.telemetry.metrics.writer_restarted("usage")
        self.telemetry.metrics.writer_restarted("traces")

    def _online_evaluator(self, settings: Settings) -> OnlineEvaluator | None:
        """Score a sample of live traffic with suite scorers (``online_eval:`` section)."""
        if not settings.online_eval.get("rules"):
            return None
        source = settings.source
        base = Path(source).parent if not source.startswith("<") else Path.cwd()
        config = parse_online_config(settings.online_eval, base)
        return OnlineEvaluator(
            config.rules,
            store_sink(self.engine),
            queue_size=config.queue_size,
            workers=config.workers,
            on_score=lambda s: self._online_score(s),
        )

    def _online_score(self, score: Any) -> None:
        self.telemetry.metrics.observe_online_score(
            alias=score.alias or "none", scorer=score.scorer, passed=score.passed
        )
        value = (
            score.value
            if score.value is not None
            else (None if score.passed is None else float(score.passed))
        )
        self.rollouts.on_score(score.request_id, score.scorer, value)

    # -- in-flight accounting -------------------------------------------------------------

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    def spawn(self, coro: Any) -> None:
        """Run follow-up work (settlement) outside the request's cancel scope."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # -- config reload ------------------------------------------------------------------

    def reread(self) -> Settings:
        """The config file as it is now, with the launch overrides applied again."""
        return self.launch_overrides(load_settings(self.settings.source))

    async def reload(self, settings: Settings, *, actor: str = "signal") -> None:
        """Swap providers and routes for a new config; in-flight requests keep the old ones.

        Audited as ``config.reload`` by ``actor`` (``signal`` for SIGHUP); a changed
        ``models`` section stores a new route version.
        """
        frozen = restart_sections(self.settings, settings)
        if frozen:
            raise ConfigError(
                f"{settings.source}: changed section(s) {', '.join(frozen)} only take effect "
                "after a restart; nothing was reloaded"
            )
        providers = build_providers(settings)
        await asyncio.gather(*(p.start() for p in providers.values()))
        old = self.providers
        self.settings = settings
        self.providers = providers
        self.scrubber = SecretScrubber.from_settings(settings)
        self.metadata_privacy = self.metadata_privacy.with_settings(
            settings, Redactor(settings.telemetry.redaction)
        )
        self.router = Router(settings, providers, scrubber=self.scrubber)
        self.telemetry.breakers = self.router.breakers
        self.prices = PriceTable(settings.prices)
        self.spend_anomalies.config = settings.costs.anomaly
        self.budget_alerts.thresholds = sorted(settings.costs.budget_alert_thresholds)
        self.spawn(self._close_later(old))
        await self._record_routes(actor)
        await audit.append(
            self.engine,
            actor=actor,
            action="config.reload",
            target=settings.source,
            details={"models": sorted(settings.models), "route_version": self.route_version},
        )

    async def _record_routes(self, actor: str) -> None:
        """Store this config's route version if its ``models`` differ from the last one."""
        digest, _stored = await release_routes.record(
            self.engine, self.settings.models, actor=actor, source=self.settings.source
        )
        self.route_version = digest
        self.telemetry.metrics.set_route_version(digest)
        self.config_hash = config_hash(self.settings)  # /readyz and pilothouse_config_info
        self.telemetry.metrics.set_config_hash(self.config_hash)

    async def _close_later(self, providers: dict[str, Provider]) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.settings.server.drain_timeout_s)
        await asyncio.gather(*(p.aclose() for p in providers.values()), return_exceptions=True)

    # -- keys ---------------------------------------------------------------------------

    async def revoke(self, key_id: str) -> None:
        self.key_cache.forget(key_id)
        if self.redis is not None:
            await self.redis.publish(self.settings.redis.prefix + REVOCATIONS, key_id)

    async def key_changed(self, key_id: str) -> None:
        """A key's (or a team's or user's) limits or budget changed: every replica reloads it.

        Team and user ids travel on the key-change channel; :meth:`_changed` routes them.
        """
        self._changed(key_id)
        if self.redis is not None:
            await self.redis.publish(self.settings.redis.prefix + KEY_CHANGES, key_id)

    async def _listen_revocations(self) -> None:
        assert self.redis is not None
        revoked = self.settings.redis.prefix + REVOCATIONS
        changed = self.settings.redis.prefix + KEY_CHANGES
        labels_channel = label_notify.channel(self.settings.redis)
        rollouts_channel = self.rollouts.channel
        degrade_channel = self.degrade.channel
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(
                    revoked, changed, labels_channel, rollouts_channel, degrade_channel
                )
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data = message["data"]
                        data = data.decode() if isinstance(data, bytes) else str(data)
                        source = message.get("channel")
                        source = source.decode() if isinstance(source, bytes) else source
                        if source == rollouts_channel:
                            self.spawn(self.rollouts.reload())
                        elif source == degrade_channel:
                            self.spawn(self.degrade.reload())
                        elif source == labels_channel:
                            self.prompt_cache.invalidate(*label_notify.parse(data))
                        elif source == changed:
                            self._changed(data)
                        else:
                            self.key_cache.forget(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("revocation listener lost redis (%s); reconnecting", exc)
                await asyncio.sleep(1.0)
                await self.key_cache.reload()
                self.scope_cache.clear()
                self.prompt_cache.clear()

    async def _watch_revocations(self) -> None:
        """Poll the store for revocations made elsewhere (CLI, another replica without Redis)."""
        since = datetime.now(UTC)
        labels_since = since
        while True:
            await asyncio.sleep(1.0)
            try:
                changed = await self.keys.changed_since(since)
                changed += await self.scopes.changed_since(since)
                revoked, since = await self.keys.revoked_since(since)
                moved, polled = await self.prompts.moved_since(labels_since - timedelta(seconds=2))
                labels_since = polled
                await self.degrade.reload()  # forced degraded mode set on another replica
            except Exception as exc:  # store briefly down: auth keeps working from the cache
                log.debug("revocation poll failed: %s", exc)
                continue
            for key_id in changed:
                self._changed(key_id)
            for key_id in revoked:
                self.key_cache.forget(key_id)
            for name, label in moved:
                self.prompt_cache.invalidate(name, label)

    def _changed(self, changed_id: str) -> None:
        if kind_of(changed_id) is not None:
            self.scope_cache.drop(changed_id)
        else:
            self.key_cache.drop(changed_id)

    async def label_moved(self, name: str, label: str) -> None:
        """A label moved or was deleted here: forget it now, and tell every replica."""
        self.prompt_cache.invalidate(name, label)
        if self.redis is not None:
            await label_notify.publish(self.redis, self.settings.redis, [(name, label)])

    async def _renew_leases(self) -> None:
        """Keep this replica's budget leases alive (a third of the lease, so one miss is fine)."""
        while True:
            await asyncio.sleep(self.settings.limits.reservation_lease_s / 3)
            try:
                await self.budgets.renew()
            except Exception as exc:  # redis briefly down: leases may lapse, never crash
                log.warning("budget lease renewal failed: %s", exc)

    async def spent_from_ledger(self, key_id: str, period: str) -> int:
        """Spent pico-USD for a key, team or user in a budget period, from the usage ledger."""
        await self.ledger.flush()
        column = {"team": usage_records.c.team_id, "user": usage_records.c.user_id}.get(
            kind_of(key_id) or "", usage_records.c.key_id
        )
        query = select(func.coalesce(func.sum(usage_records.c.cost_pico), 0)).where(
            column == key_id
        )
        start: datetime | None = period_start(period)
        if start is not None:
            query = query.where(usage_records.c.created_at >= start)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


async def _cancel(*tasks: asyncio.Task[None] | None) -> None:
    """Cancel background tasks and wait for them to finish unwinding."""
    for task in tasks:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
