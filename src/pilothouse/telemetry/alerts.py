"""Alert state (dedupe, resolve) and webhook delivery that never blocks a request.

:class:`AlertManager` turns conditions into messages: a condition that becomes
true emits one ``firing`` message and stays silent while it holds; when it
clears, one ``resolved`` message follows. Burn-rate checks come from an
:class:`SLOTracker`; other sources (spend anomalies, budget thresholds) report
through :meth:`AlertManager.update` and share the same dedupe and webhook.

:class:`WebhookNotifier` owns a bounded queue and one background task. The
request path only ever calls ``notify`` (a ``put_nowait``); a full queue drops
the message and counts it, because an alert storm must not become memory
growth. Delivery retries throttling, server errors and network failures with
capped exponential backoff; other 4xx answers are final (retrying a rejected
payload cannot help).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Literal, Protocol

import aiohttp
import msgspec

from pilothouse.errors import retryable_status
from pilothouse.telemetry.config import WebhookConfig
from pilothouse.telemetry.slo import SLOTracker, WindowBurn

log = logging.getLogger(__name__)

#: Sends one JSON body and returns the HTTP status; raises on network failure.
Transport = Callable[[bytes], Awaitable[int]]
Sink = Callable[["Alert"], object]


class Claims(Protocol):
    """Cross-replica arbiter (``telemetry.alert_claims``): who sends a transition."""

    async def claim(self, alert: Alert) -> bool: ...

    async def release(self, alert: Alert) -> None: ...


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One message to a human: something started (``firing``) or stopped (``resolved``)."""

    kind: str
    status: Literal["firing", "resolved"]
    severity: str
    fingerprint: str
    summary: str
    labels: dict[str, str]
    values: dict[str, float]
    started_at: float
    at: float


def fingerprint(kind: str, labels: Mapping[str, str]) -> str:
    """Stable identity of a condition, used for dedupe and by receivers to pair messages."""
    return kind + "|" + ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _burn_summary(burn: WindowBurn) -> str:
    return (
        f"SLO {burn.slo} ({burn.sli}, alias {burn.alias}) is burning its error budget "
        f"{burn.long_burn:.1f}x over {burn.long_window} and {burn.short_burn:.1f}x over "
        f"{burn.short_window} (threshold {burn.threshold:g}x, {burn.rule})"
    )


class AlertManager:
    """Evaluates on demand and emits only state changes, to every sink."""

    def __init__(
        self,
        tracker: SLOTracker | None = None,
        *,
        sinks: Iterable[Sink] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tracker = tracker
        self._sinks = list(sinks)
        self._clock = clock
        self._firing: dict[str, Alert] = {}

    @property
    def firing(self) -> list[Alert]:
        """Alerts currently firing, oldest first."""
        return sorted(self._firing.values(), key=lambda a: a.started_at)

    def evaluate(self, now: float | None = None) -> list[Alert]:
        """Check every SLO burn-rate rule at ``now``; return (and send) the changes."""
        if self._tracker is None:
            return []
        now = self._clock() if now is None else now
        emitted = []
        for burn in self._tracker.evaluate(now):
            alert = self.update(
                kind="slo_burn",
                active=burn.firing,
                now=now,
                severity=burn.severity,
                summary=_burn_summary(burn),
                labels={"slo": burn.slo, "alias": burn.alias, "sli": burn.sli, "rule": burn.rule},
                values={
                    "long_burn_rate": burn.long_burn,
                    "short_burn_rate": burn.short_burn,
                    "threshold": burn.threshold,
                },
            )
            if alert is not None:
                emitted.append(alert)
        return emitted

    def update(
        self,
        *,
        kind: str,
        active: bool,
        now: float,
        severity: str,
        summary: str,
        labels: Mapping[str, str],
        values: Mapping[str, float] | None = None,
    ) -> Alert | None:
        """Report a condition's current truth; returns the message if its state changed."""
        key = fingerprint(kind, labels)
        previous = self._firing.get(key)
        if active == (previous is not None):
            return None
        alert = Alert(
            kind=kind,
            status="firing" if active else "resolved",
            severity=severity,
            fingerprint=key,
            summary=summary,
            labels=dict(labels),
            values=dict(values or {}),
            started_at=now if previous is None else previous.started_at,
            at=now,
        )
        if active:
            self._firing[key] = alert
        else:
            del self._firing[key]
        for sink in self._sinks:
            sink(alert)
        return alert


class WebhookNotifier:
    """POSTs alerts as JSON from a bounded queue, in order, with retries.

    ``transport`` and ``sleep`` are injectable so tests run without sockets or
    waiting; by default an aiohttp session is opened in :meth:`start`.
    """

    def __init__(
        self,
        config: WebhookConfig,
        *,
        transport: Transport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_drop: Callable[[Alert], None] | None = None,
        claims: Claims | None = None,
    ) -> None:
        self._config = config
        self._claims = claims  # several replicas: only the claim's winner sends
        self._transport = transport
        self._sleep = sleep
        self._on_drop = on_drop
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=config.queue_size)
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.skipped = 0  # sent by another replica

    @property
    def pending(self) -> int:
        """Messages waiting (for the queue-depth gauge)."""
        return self._queue.qsize()

    def notify(self, alert: Alert) -> bool:
        """Queue ``alert`` without waiting; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("alert queue full; dropped %s %s", alert.status, alert.fingerprint)
            if self._on_drop is not None:
                self._on_drop(alert)
            return False
        return True

    async def start(self) -> None:
        """Start the delivery task (from the ASGI lifespan)."""
        if self._transport is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_s)
            )
            self._transport = self._post
        self._task = asyncio.create_task(self._run(), name="pilothouse-alert-webhook")

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued within ``timeout_s``, then stop and close the session."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, body: bytes) -> int:
        assert self._session is not None
        headers = {"content-type": "application/json", **self._config.headers}
        async with self._session.post(self._config.url, data=body, headers=headers) as resp:
            return resp.status

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await self._deliver(alert)
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued alert has been delivered, skipped or given up on."""
        await self._queue.join()

    async def _deliver(self, alert: Alert) -> None:
        if self._claims is not None:
            try:
                won = await self._claims.claim(alert)
            except Exception as exc:  # Redis down: better twice than never
                log.warning("alert claim failed (%s); sending anyway", type(exc).__name__)
                won = True
            if not won:
                self.skipped += 1
                return
        if not await self._send(alert) and self._claims is not None:
            with contextlib.suppress(Exception):
                await self._claims.release(alert)

    async def _send(self, alert: Alert) -> bool:
        assert self._transport is not None
        body = msgspec.json.encode(alert)
        cfg = self._config
        outcome = "not attempted"
        for attempt in range(1, cfg.max_attempts + 1):
            try:
                status = await self._transport(body)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                outcome = type(exc).__name__
            else:
                if 200 <= status < 300:
                    self.delivered += 1
                    return True
                if not retryable_status(status):
                    outcome = f"HTTP {status}, not retryable"
                    break
                outcome = f"HTTP {status}"
            if attempt < cfg.max_attempts:
                await self._sleep(min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempt - 1)))
        self.failed += 1
        # The URL is not logged: chat webhooks carry their token in it.
        log.error("alert webhook gave up on %s (%s): %s", alert.fingerprint, alert.status, outcome)
        return False
