"""Telemetry for one runtime: metrics, SLOs, alerts and the trace writer, wired together.

The request pipeline calls :meth:`Telemetry.finish` once per request; every
signal (Prometheus series, SLO counts, the stored trace) is derived from the
same :class:`RequestContext`, so they can never disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.config.schema import Settings
from pilothouse.gateway.context import RequestContext
from pilothouse.limits.money import pico_to_usd
from pilothouse.routing.breaker import CircuitBreaker
from pilothouse.store.spool import Quarantine, quarantine_path
from pilothouse.store.writer_thread import WriterLoop
from pilothouse.telemetry.alert_claims import RedisAlertClaims
from pilothouse.telemetry.alerts import AlertManager, WebhookNotifier
from pilothouse.telemetry.metrics import GatewayMetrics
from pilothouse.telemetry.recorder import TraceRecorder, trace_spool_path
from pilothouse.telemetry.slo import SLOTracker, latency_thresholds
from pilothouse.telemetry.trace_query import prune

log = logging.getLogger("pilothouse.telemetry")
LOOP_LAG_INTERVAL_S = 0.1  # event-loop lag sample period (10 wake-ups a second)


class Telemetry:
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        redis: Redis | None = None,
        writer: WriterLoop | None = None,
    ) -> None:
        self.settings = settings
        slo = settings.slo
        self.metrics = GatewayMetrics(
            known_aliases=settings.models.keys(),
            extra_latency_buckets=latency_thresholds(slo.objectives),
            multiprocess_dir=settings.telemetry.metrics_multiprocess_dir,
        )
        self.slo = SLOTracker(slo.objectives, slo.alerts)
        self.notifier: WebhookNotifier | None = None
        sinks = []
        if slo.webhook is not None:
            claims = RedisAlertClaims(redis, settings.redis.prefix) if redis is not None else None
            self.notifier = WebhookNotifier(
                slo.webhook,
                on_drop=lambda _a: self.metrics.queue_dropped_inc("alerts"),
                claims=claims,  # replicas sharing Redis send each alert once
            )
            sinks.append(self.notifier.notify)
        self.alerts = AlertManager(self.slo, sinks=sinks)
        self.quarantine = Quarantine(
            quarantine_path(settings.store.spool_path), on_quarantine=self._quarantined
        )
        self.traces = TraceRecorder(
            engine,
            settings.telemetry,
            on_drop=lambda n: self.metrics.queue_dropped_inc("traces", n),
            spool_path=settings.telemetry.spool_path or trace_spool_path(settings.store.spool_path),
            quarantine=self.quarantine,
            stall_after_s=settings.store.writer_stall_s,
            writer=writer,
        )
        self.traces.health.on_restart = lambda: self.metrics.writer_restarted("traces")
        self.trace_enabled = settings.telemetry.traces
        self._request_loop: asyncio.AbstractEventLoop | None = None  # set by start()
        self._request_thread = threading.get_ident()
        self._loop_task: asyncio.Task[None] | None = None
        self._prune_task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self.engine = engine
        self.breakers: dict[str, CircuitBreaker] = {}

    async def start(self) -> None:
        self._request_loop = asyncio.get_running_loop()
        self._request_thread = threading.get_ident()
        await self.traces.start()
        if self.notifier is not None:
            await self.notifier.start()
        self._loop_task = asyncio.create_task(self._evaluate_forever(), name="slo-evaluator")
        self._prune_task = asyncio.create_task(self._prune_forever(), name="trace-retention")
        self._lag_task = asyncio.create_task(self._sample_loop_lag(), name="loop-lag")

    async def stop(self) -> None:
        for task in (self._loop_task, self._prune_task, self._lag_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.traces.stop()
        if self.notifier is not None:
            await self.notifier.aclose()
        self.metrics.close()

    def _quarantined(self, queue: str, count: int) -> None:
        """Count a quarantined row and raise one alert per queue (deduplicated).

        Called from the writer thread too: the alert manager and its webhook
        queue belong to the request loop, so the alert is raised there.
        """
        self.metrics.rows_quarantined_inc(queue, count)
        loop = self._request_loop
        if loop is not None and threading.get_ident() != self._request_thread:
            with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
                loop.call_soon_threadsafe(self._quarantine_alert, queue, count)
            return
        self._quarantine_alert(queue, count)

    def _quarantine_alert(self, queue: str, count: int) -> None:
        total = self.quarantine.counts.get(queue, count)
        self.alerts.update(
            kind="rows_quarantined",
            active=True,
            now=time.time(),
            severity="warning",
            summary=f"{queue} rows were quarantined in {self.quarantine.path}",
            labels={"queue": queue},
            values={"rows": float(total)},
        )

    # -- per request --------------------------------------------------------------------

    def finish(self, ctx: RequestContext) -> None:
        """Everything telemetry needs from one request; cheap, no I/O."""
        latency = ctx.elapsed()
        alias = ctx.alias or "none"
        provider = ctx.provider or "none"
        team = ""
        if ctx.metadata and isinstance(ctx.metadata.get("team"), str):
            team = ctx.metadata["team"]
        elif ctx.key is not None and isinstance(ctx.key.metadata.get("team"), str):
            team = ctx.key.metadata["team"]
        self.metrics.observe_request(
            alias=alias,
            provider=provider,
            status=ctx.status,
            latency_s=latency,
            ttft_s=ctx.ttft_s if ctx.stream else None,
            input_tokens=ctx.usage.input_tokens,
            output_tokens=ctx.usage.output_tokens,
            cost_usd=pico_to_usd(ctx.cost_pico) if ctx.cost_pico else 0,
            key_id=ctx.key.id if ctx.key else "",
            team=team,
            cache_hit=ctx.cache_hit if ctx.cache_checked_at else None,
        )
        decision = ctx.route
        if decision is not None:
            self.metrics.observe_route(
                alias=decision.requested,
                served=decision.alias,
                rule=decision.rule or "none",
                degraded=decision.degrade_reason if decision.degraded else None,
            )
        for attempt in ctx.attempts:
            if attempt.outcome != "skipped_open":
                self.metrics.observe_attempt(
                    provider=attempt.provider,
                    model=attempt.model,
                    outcome=attempt.outcome,
                    latency_s=attempt.latency_s,
                )
        if ctx.alias:
            self.slo.record(ctx.alias, ctx.status, latency)
        if self.trace_enabled and ctx.trace_id:
            self.traces.record(ctx)

    # -- periodic -----------------------------------------------------------------------

    def refresh_gauges(self, queues: dict[str, int]) -> None:
        for label, breaker in self.breakers.items():
            self.metrics.set_breaker_state(label, breaker.state)
        for name, depth in queues.items():
            self.metrics.set_queue_depth(name, depth)
        self.metrics.set_queue_depth("traces", self.traces.queue.qsize())
        if self.notifier is not None:
            self.metrics.set_queue_depth("alerts", self.notifier.pending)

    def evaluate(self, now: float | None = None) -> list[Any]:
        """Evaluate burn-rate alerts and export SLO gauges (time injectable for tests)."""
        now = time.time() if now is None else now
        emitted = self.alerts.evaluate(now)
        for status in self.slo.status(now):
            self.metrics.set_slo_status(
                slo=status.name,
                alias=status.alias,
                budget_remaining=status.error_budget_remaining,
                burn_rates=status.burn_rates,
            )
        return emitted

    async def _evaluate_forever(self) -> None:
        interval = self.settings.slo.evaluate_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                self.evaluate()
            except Exception:
                log.exception("SLO evaluation failed")

    async def _sample_loop_lag(self) -> None:
        """``pilothouse_event_loop_lag_seconds``: how late a 100 ms timer fires.

        Anything that holds the loop (a slow writer batch, CPU work, GC) shows
        here as lag, and every request on this loop waits as long.
        """
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LOOP_LAG_INTERVAL_S)
            self.metrics.observe_loop_lag(loop.time() - started - LOOP_LAG_INTERVAL_S)

    async def _prune_forever(self) -> None:
        """Apply ``telemetry.retention_days`` hourly (``pilothouse traces prune`` does it now)."""
        days = self.settings.telemetry.retention_days
        while True:
            try:
                cutoff = datetime.now(UTC) - timedelta(days=days)
                removed = await prune(self.engine, cutoff)
                if removed:
                    log.info("pruned %d traces older than %d days", removed, days)
            except Exception as exc:
                log.warning("trace retention failed: %s", exc)
            await asyncio.sleep(3600)
