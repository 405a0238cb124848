"""Prometheus metrics for the gateway, owned by one :class:`GatewayMetrics` object.

Why an object and not module-level metrics: tests build many gateways in one
process, and prometheus_client's default registry would make them share (and
double-register) series. Each ``GatewayMetrics`` owns its registry, creates
nothing on import, and exposes a few coarse methods the request pipeline calls
once per request with plain values. Label children are cached in plain dicts
so a request costs a handful of dict lookups and float additions.

Several workers (``server.workers > 1``) each count only their own requests,
so a scrape answered by one worker would be wrong. prometheus_client's
multiprocess mode fixes that: every worker writes its values to mmap files in
a shared directory and whichever worker answers ``/metrics`` merges them. That
library decides the mode when it is first imported, from the environment, so
the supervisor (``pilothouse serve``) must:

1. call :func:`prepare_multiprocess_dir(path)` once, before workers start; it
   empties stale files of a previous run and returns the environment
   variables the workers need;
2. put those variables into the workers' environment (``os.environ.update``
   before ``uvicorn.run(..., workers=n)``; spawned workers inherit it);
3. in each worker build ``GatewayMetrics(multiprocess_dir=path)`` with the same
   path, and call :meth:`GatewayMetrics.close` at shutdown so the worker's
   live gauges (in-flight, queue depth) stop counting.

A worker started without step 2 refuses to build (:class:`RuntimeError`)
instead of silently serving one worker's numbers.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

# Full metric names; rules.py and the Grafana dashboard are built from these.
REQUESTS_TOTAL: Final = "pilothouse_requests_total"
REQUEST_DURATION: Final = "pilothouse_request_duration_seconds"
TTFT: Final = "pilothouse_time_to_first_token_seconds"
UPSTREAM_DURATION: Final = "pilothouse_upstream_attempt_duration_seconds"
INPUT_TOKENS: Final = "pilothouse_input_tokens_total"
OUTPUT_TOKENS: Final = "pilothouse_output_tokens_total"
COST_USD: Final = "pilothouse_cost_usd_total"
CACHE_HITS: Final = "pilothouse_cache_hits_total"
CACHE_MISSES: Final = "pilothouse_cache_misses_total"
BREAKER_STATE: Final = "pilothouse_breaker_state"
IN_FLIGHT: Final = "pilothouse_in_flight_requests"
QUEUE_DEPTH: Final = "pilothouse_queue_depth"
QUEUE_DROPPED: Final = "pilothouse_queue_dropped_total"
EVENT_LOOP_LAG: Final = "pilothouse_event_loop_lag_seconds"
ROWS_QUARANTINED: Final = "pilothouse_rows_quarantined_total"
WRITER_RESTARTS: Final = "pilothouse_writer_restarts_total"
AUTH_FAILURES: Final = "pilothouse_auth_failures_total"
BUDGET_REMAINING: Final = "pilothouse_budget_remaining_usd"
SLO_BURN_RATE: Final = "pilothouse_slo_burn_rate"
SLO_BUDGET_REMAINING: Final = "pilothouse_slo_error_budget_remaining_ratio"
RAG_SEARCHES: Final = "pilothouse_rag_searches_total"
RAG_UNDERFILLED: Final = "pilothouse_rag_underfilled_total"
RAG_STALE: Final = "pilothouse_rag_stale_documents"

#: Buckets from 5 ms (a cache hit) to 120 s (a long non-streamed generation).
DEFAULT_LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0,
    5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0,
)  # fmt: skip

#: Event-loop lag buckets: from 0.5 ms (healthy) to 2.5 s (a blocked loop).
LOOP_LAG_BUCKETS: Final[tuple[float, ...]] = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip

BreakerState = Literal["closed", "half_open", "open"]
_BREAKER_VALUES: Final[Mapping[str, int]] = {"closed": 0, "half_open": 1, "open": 2}

#: Label value used for aliases outside ``known_aliases`` (keeps label cardinality bounded).
OTHER_ALIAS: Final = "other"


def prepare_multiprocess_dir(path: str | os.PathLike[str]) -> dict[str, str]:
    """Create/empty the shared metrics directory; return the workers' environment.

    Stale ``*.db`` files from a previous run would otherwise be merged into the
    new run's counters. Call this once in the supervisor, never in a worker.
    """
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return {"PROMETHEUS_MULTIPROC_DIR": str(directory)}


def multiprocess_active() -> bool:
    """Whether prometheus_client was imported with multiprocess (mmap) values."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def merged_latency_buckets(extra: Iterable[float] = ()) -> tuple[float, ...]:
    """Default buckets plus ``extra`` (SLO latency thresholds must be bucket bounds)."""
    return tuple(sorted(set(DEFAULT_LATENCY_BUCKETS) | {float(b) for b in extra}))


class _AliasSeries:
    """Label children of one (alias, provider) pair, bound once and reused."""

    __slots__ = ("cache_hit", "cache_miss", "duration", "input_tokens", "output_tokens", "ttft")

    def __init__(self, m: GatewayMetrics, alias: str, provider: str) -> None:
        self.duration = m.request_duration.labels(alias)
        self.ttft = m.ttft.labels(alias)
        self.input_tokens = m.input_tokens.labels(alias, provider)
        self.output_tokens = m.output_tokens.labels(alias, provider)
        self.cache_hit = m.cache_hits.labels(alias)
        self.cache_miss = m.cache_misses.labels(alias)


class GatewayMetrics:
    """Every metric the gateway exports, in a registry of its own.

    ``known_aliases``: when given, any other alias is recorded as ``other`` so
    a client sending random model names cannot create unbounded series.
    ``extra_latency_buckets``: add each latency SLO threshold here, so the SLO
    rules can read the exact bucket (see :func:`slo.latency_thresholds`).
    """

    def __init__(
        self,
        *,
        known_aliases: Collection[str] | None = None,
        extra_latency_buckets: Iterable[float] = (),
        multiprocess_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._mp_dir = None if multiprocess_dir is None else str(multiprocess_dir)
        if self._mp_dir is not None and not multiprocess_active():
            raise RuntimeError(
                "metrics multiprocess_dir is set but this worker was started without the "
                "environment from prepare_multiprocess_dir(); its numbers would be per-worker"
            )
        self._known = None if known_aliases is None else frozenset(known_aliases)
        self.latency_buckets = merged_latency_buckets(extra_latency_buckets)
        reg = self.registry = CollectorRegistry(auto_describe=True)
        buckets = self.latency_buckets
        self.requests = Counter(
            REQUESTS_TOTAL,
            "Gateway requests answered, by model alias, serving provider and HTTP status.",
            ("alias", "provider", "status"),
            registry=reg,
        )
        self.request_duration = Histogram(
            REQUEST_DURATION,
            "Time from request received to last byte sent, by alias.",
            ("alias",),
            buckets=buckets,
            registry=reg,
        )
        self.ttft = Histogram(
            TTFT,
            "Time to first token of streamed responses, by alias.",
            ("alias",),
            buckets=buckets,
            registry=reg,
        )
        self.upstream_duration = Histogram(
            UPSTREAM_DURATION,
            "Duration of each upstream attempt (retries and fallbacks included).",
            ("provider", "model", "outcome"),
            buckets=buckets,
            registry=reg,
        )
        self.input_tokens = Counter(
            INPUT_TOKENS, "Input (prompt) tokens.", ("alias", "provider"), registry=reg
        )
        self.output_tokens = Counter(
            OUTPUT_TOKENS, "Output (completion) tokens.", ("alias", "provider"), registry=reg
        )
        self.cost = Counter(
            COST_USD,
            "Spend in USD (float approximation; the ledger holds exact amounts).",
            ("alias", "provider", "key", "team"),
            registry=reg,
        )
        self.online_scores = Counter(
            "pilothouse_online_eval_scores",
            "Online evaluation verdicts on sampled live traffic.",
            ("alias", "scorer", "result"),
            registry=reg,
        )
        self.cache_hits = Counter(CACHE_HITS, "Response cache hits.", ("alias",), registry=reg)
        self.cache_misses = Counter(
            CACHE_MISSES, "Response cache misses.", ("alias",), registry=reg
        )
        self.route_decisions = Counter(
            "pilothouse_route_decisions",
            "Routing policy decisions: requested alias, serving alias and the rule that matched.",
            ("alias", "served", "rule"),
            registry=reg,
        )
        self.rag_searches = Counter(
            RAG_SEARCHES, "RAG searches served.", ("collection", "mode"), registry=reg
        )
        self.rag_underfilled = Counter(
            RAG_UNDERFILLED,
            "RAG searches that returned fewer than k results (for the caller's groups and filter).",
            ("collection", "mode"),
            registry=reg,
        )
        self.rag_stale = Gauge(
            RAG_STALE,
            "Documents per RAG collection whose source changed since indexing or that are "
            "older than freshness.max_age (as `pilothouse rag status` counts them).",
            ("collection",),
            registry=reg,
        )
        self.degraded = Counter(
            "pilothouse_degraded_requests",
            "Requests served in degraded mode (all breakers open, or forced by an operator).",
            ("alias", "reason"),
            registry=reg,
        )
        self.breaker_state = Gauge(
            BREAKER_STATE,
            "Circuit breaker state per target: 0 closed, 1 half-open, 2 open.",
            ("target",),
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.in_flight = Gauge(
            IN_FLIGHT, "Requests being handled now.", registry=reg, multiprocess_mode="livesum"
        )
        self.queue_depth = Gauge(
            QUEUE_DEPTH,
            "Items waiting in a background queue (ledger, traces, alerts).",
            ("queue",),
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.queue_dropped = Counter(
            QUEUE_DROPPED, "Items dropped because a queue was full.", ("queue",), registry=reg
        )
        self.loop_lag = Histogram(
            EVENT_LOOP_LAG,
            "How late a periodic 100 ms timer fires on the request event loop.",
            buckets=LOOP_LAG_BUCKETS,
            registry=reg,
        )
        self.rows_quarantined = Counter(
            ROWS_QUARANTINED,
            "Rows a background writer could not store or spool, kept in the quarantine file.",
            ("queue",),
            registry=reg,
        )
        self.writer_restarts = Counter(
            WRITER_RESTARTS,
            "Times a background writer task died and was restarted.",
            ("queue",),
            registry=reg,
        )
        self.auth_failures = Counter(
            AUTH_FAILURES,
            "Requests with a wrong key: answered 401 (unauthorized) or 429 (throttled).",
            ("outcome",),
            registry=reg,
        )
        self.budget_remaining = Gauge(
            BUDGET_REMAINING,
            "Budget left per API key in USD.",
            ("key",),
            registry=reg,
            multiprocess_mode="livemin",
        )
        self.slo_burn_rate = Gauge(
            SLO_BURN_RATE,
            "Error-budget burn rate seen by the gateway's own SLO evaluator, per window.",
            ("slo", "alias", "window"),
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.slo_budget_remaining = Gauge(
            SLO_BUDGET_REMAINING,
            "Fraction of the error budget left over the SLO window (negative when overspent).",
            ("slo", "alias"),
            registry=reg,
            multiprocess_mode="livemin",
        )
        self.route_version = Gauge(
            "pilothouse_route_version_info",
            "1 for the route-version hash (of the `models` config) this replica serves.",
            ("hash",),
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.config_info = Gauge(
            "pilothouse_config_info",
            "1 for the hash of the effective config this replica runs (secrets excluded).",
            ("hash",),
            registry=reg,
            multiprocess_mode="livemax",
        )
        self._alias_series: dict[tuple[str, str], _AliasSeries] = {}
        self._status_children: dict[tuple[str, str, int], Counter] = {}
        self._cost_children: dict[tuple[str, str, str, str], Counter] = {}

    # ---- per request ------------------------------------------------------------------

    def observe_request(
        self,
        *,
        alias: str,
        provider: str,
        status: int,
        latency_s: float,
        ttft_s: float | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float | Decimal = 0.0,
        key_id: str = "",
        team: str = "",
        cache_hit: bool | None = None,
    ) -> None:
        """Record one finished request.

        ``provider`` is the provider that served the answer (``cache`` for a
        cache hit, ``none`` when no upstream was tried). ``cache_hit`` is None
        when the alias has no cache, so its hit rate is not diluted.
        """
        if self._known is not None and alias not in self._known:
            alias = OTHER_ALIAS
        series = self._alias_series.get((alias, provider))
        if series is None:
            series = self._alias_series[(alias, provider)] = _AliasSeries(self, alias, provider)
        counter = self._status_children.get((alias, provider, status))
        if counter is None:
            counter = self.requests.labels(alias, provider, str(status))
            self._status_children[(alias, provider, status)] = counter
        counter.inc()
        series.duration.observe(latency_s)
        if ttft_s is not None:
            series.ttft.observe(ttft_s)
        if input_tokens:
            series.input_tokens.inc(input_tokens)
        if output_tokens:
            series.output_tokens.inc(output_tokens)
        if cost_usd:
            cost_key = (alias, provider, key_id, team)
            cost = self._cost_children.get(cost_key)
            if cost is None:
                cost = self._cost_children[cost_key] = self.cost.labels(*cost_key)
            cost.inc(float(cost_usd))
        if cache_hit is not None:
            (series.cache_hit if cache_hit else series.cache_miss).inc()

    def observe_route(self, *, alias: str, served: str, rule: str, degraded: str | None) -> None:
        """One routing decision (aliases and rules come from config: bounded labels)."""
        self.route_decisions.labels(alias, served, rule).inc()
        if degraded is not None:
            self.degraded.labels(alias, degraded).inc()

    def observe_rag_search(self, *, collection: str, mode: str, underfilled: bool) -> None:
        """One search (collections come from config, modes are three: bounded labels)."""
        self.rag_searches.labels(collection, mode).inc()
        if underfilled:
            self.rag_underfilled.labels(collection, mode).inc()

    def observe_attempt(self, *, provider: str, model: str, outcome: str, latency_s: float) -> None:
        """Record one upstream attempt; ``outcome`` is e.g. ok, error, timeout, rate_limited."""
        self.upstream_duration.labels(provider, model, outcome).observe(latency_s)

    def observe_online_score(self, *, alias: str, scorer: str, passed: bool | None) -> None:
        """One online-eval verdict; ``result`` is pass, fail or error/unscored."""
        result = "pass" if passed else ("fail" if passed is False else "none")
        if self._known is not None and alias not in self._known:
            alias = OTHER_ALIAS
        self.online_scores.labels(alias, scorer, result).inc()

    def request_started(self) -> None:
        """Count a request as in flight; pair with :meth:`request_finished` in a finally."""
        self.in_flight.inc()

    def request_finished(self) -> None:
        self.in_flight.dec()

    # ---- state changes (called when they happen, not per request) -------------------

    def set_breaker_state(self, target: str, state: BreakerState) -> None:
        """``target`` is ``provider/model``; state as the breaker names it."""
        self.breaker_state.labels(target).set(_BREAKER_VALUES[state])

    def set_route_version(self, digest: str) -> None:
        """Exactly one series: the route version now served (replicas that differ show)."""
        self.route_version.clear()
        self.route_version.labels(digest).set(1)

    def set_config_hash(self, digest: str) -> None:
        """Exactly one series: replicas running different configs show as different hashes."""
        self.config_info.clear()
        self.config_info.labels(digest).set(1)

    def set_rag_stale(self, collection: str, stale: int) -> None:
        self.rag_stale.labels(collection).set(stale)

    def set_queue_depth(self, queue: str, depth: int) -> None:
        self.queue_depth.labels(queue).set(depth)

    def queue_dropped_inc(self, queue: str, count: int = 1) -> None:
        """Count items a full queue refused; never drop silently."""
        self.queue_dropped.labels(queue).inc(count)

    def observe_loop_lag(self, seconds: float) -> None:
        self.loop_lag.observe(max(seconds, 0.0))

    def rows_quarantined_inc(self, queue: str, count: int = 1) -> None:
        """Count rows set aside in the quarantine file (``usage``, ``traces``)."""
        self.rows_quarantined.labels(queue).inc(count)

    def auth_failed(self, outcome: str) -> None:
        """A wrong key: ``unauthorized`` (401) or ``throttled`` (429, limits/auth_throttle)."""
        self.auth_failures.labels(outcome).inc()

    def writer_restarted(self, queue: str) -> None:
        self.writer_restarts.labels(queue).inc()

    def set_budget_remaining(self, key_id: str, usd: float | Decimal) -> None:
        self.budget_remaining.labels(key_id).set(float(usd))

    def set_slo_status(
        self, *, slo: str, alias: str, budget_remaining: float, burn_rates: Mapping[str, float]
    ) -> None:
        """Export the in-gateway SLO evaluation (``burn_rates`` keyed by window, e.g. ``1h``)."""
        self.slo_budget_remaining.labels(slo, alias).set(budget_remaining)
        for window, rate in burn_rates.items():
            self.slo_burn_rate.labels(slo, alias, window).set(rate)

    # ---- exposition ------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The ``/metrics`` body and its content type (merged across workers if needed)."""
        if self._mp_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self._mp_dir)  # type: ignore[no-untyped-call]
        return generate_latest(merged), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """At worker shutdown: drop this worker's live gauges from the merged view."""
        if self._mp_dir is not None:
            mark_process_dead(os.getpid(), self._mp_dir)  # type: ignore[no-untyped-call]
