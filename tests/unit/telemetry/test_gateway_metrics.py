"""GatewayMetrics: what a Prometheus scrape of /metrics shows after requests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pilothouse.telemetry.metrics import GatewayMetrics, prepare_multiprocess_dir

Sample = tuple[str, frozenset[tuple[str, str]]]


def scrape(metrics: GatewayMetrics) -> dict[Sample, float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(scraped: dict[Sample, float], name: str, **labels: str) -> float:
    return scraped[(name, frozenset(labels.items()))]


def test_one_request_is_counted_everywhere_a_dashboard_looks() -> None:
    m = GatewayMetrics()
    m.observe_request(
        alias="chat",
        provider="openai",
        status=200,
        latency_s=0.8,
        ttft_s=0.12,
        input_tokens=120,
        output_tokens=30,
        cost_usd=Decimal("0.0042"),
        key_id="key_1",
        team="search",
        cache_hit=False,
    )
    m.observe_request(alias="chat", provider="openai", status=502, latency_s=3.0)
    s = scrape(m)
    assert value(s, "pilothouse_requests_total", alias="chat", provider="openai", status="200") == 1
    assert value(s, "pilothouse_requests_total", alias="chat", provider="openai", status="502") == 1
    assert value(s, "pilothouse_request_duration_seconds_count", alias="chat") == 2
    assert value(s, "pilothouse_request_duration_seconds_bucket", alias="chat", le="1.0") == 1
    assert value(s, "pilothouse_time_to_first_token_seconds_count", alias="chat") == 1
    assert value(s, "pilothouse_input_tokens_total", alias="chat", provider="openai") == 120
    assert value(s, "pilothouse_output_tokens_total", alias="chat", provider="openai") == 30
    cost = value(
        s, "pilothouse_cost_usd_total", alias="chat", provider="openai", key="key_1", team="search"
    )
    assert cost == pytest.approx(0.0042)
    assert value(s, "pilothouse_cache_misses_total", alias="chat") == 1
    assert value(s, "pilothouse_cache_hits_total", alias="chat") == 0


def test_repeated_observations_accumulate_on_the_same_series() -> None:
    m = GatewayMetrics()
    for _ in range(3):
        m.observe_request(alias="a", provider="p", status=200, latency_s=0.01, cache_hit=True)
    s = scrape(m)
    assert value(s, "pilothouse_requests_total", alias="a", provider="p", status="200") == 3
    assert value(s, "pilothouse_cache_hits_total", alias="a") == 3


def test_alias_without_cache_does_not_dilute_hit_rate() -> None:
    m = GatewayMetrics()
    m.observe_request(alias="a", provider="p", status=200, latency_s=0.1, cache_hit=None)
    s = scrape(m)
    assert value(s, "pilothouse_cache_hits_total", alias="a") == 0
    assert value(s, "pilothouse_cache_misses_total", alias="a") == 0


def test_gateways_in_one_process_do_not_share_numbers() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    first.observe_request(alias="a", provider="p", status=200, latency_s=0.1)
    assert (
        "pilothouse_requests_total",
        frozenset({("alias", "a"), ("provider", "p"), ("status", "200")}),
    ) in scrape(first)
    assert not any(name == "pilothouse_requests_total" for name, _ in scrape(second))


def test_unknown_aliases_collapse_into_other() -> None:
    m = GatewayMetrics(known_aliases={"chat"})
    for name in ("chat", "gpt-random-1", "gpt-random-2"):
        m.observe_request(alias=name, provider="none", status=404, latency_s=0.001)
    s = scrape(m)
    assert value(s, "pilothouse_requests_total", alias="other", provider="none", status="404") == 2
    assert not any(dict(labels).get("alias") == "gpt-random-1" for _, labels in s)


def test_slo_latency_threshold_becomes_an_exact_bucket() -> None:
    m = GatewayMetrics(extra_latency_buckets=[0.8])
    m.observe_request(alias="a", provider="p", status=200, latency_s=0.8)
    s = scrape(m)
    assert value(s, "pilothouse_request_duration_seconds_bucket", alias="a", le="0.8") == 1
    assert value(s, "pilothouse_request_duration_seconds_bucket", alias="a", le="0.75") == 0


def test_gauges_and_counters_for_state() -> None:
    m = GatewayMetrics()
    m.set_breaker_state("openai/gpt-4o", "open")
    m.set_breaker_state("local/smol", "half_open")
    m.request_started()
    m.request_started()
    m.request_finished()
    m.set_queue_depth("ledger", 17)
    m.queue_dropped_inc("traces", 3)
    m.set_budget_remaining("key_1", Decimal("12.50"))
    m.observe_attempt(provider="openai", model="gpt-4o", outcome="timeout", latency_s=30.0)
    m.set_slo_status(slo="chat-av", alias="chat", budget_remaining=0.25, burn_rates={"1h": 15.0})
    s = scrape(m)
    assert value(s, "pilothouse_breaker_state", target="openai/gpt-4o") == 2
    assert value(s, "pilothouse_breaker_state", target="local/smol") == 1
    assert value(s, "pilothouse_in_flight_requests") == 1
    assert value(s, "pilothouse_queue_depth", queue="ledger") == 17
    assert value(s, "pilothouse_queue_dropped_total", queue="traces") == 3
    assert value(s, "pilothouse_budget_remaining_usd", key="key_1") == 12.5
    assert (
        value(
            s,
            "pilothouse_upstream_attempt_duration_seconds_count",
            provider="openai",
            model="gpt-4o",
            outcome="timeout",
        )
        == 1
    )
    assert value(s, "pilothouse_slo_burn_rate", slo="chat-av", alias="chat", window="1h") == 15.0
    assert (
        value(s, "pilothouse_slo_error_budget_remaining_ratio", slo="chat-av", alias="chat") == 0.25
    )


def test_multiprocess_dir_without_worker_environment_is_refused(tmp_path: Path) -> None:
    # This test process imported prometheus_client without PROMETHEUS_MULTIPROC_DIR.
    with pytest.raises(RuntimeError, match="prepare_multiprocess_dir"):
        GatewayMetrics(multiprocess_dir=tmp_path)


_WORKER = textwrap.dedent(
    """
    import sys
    from pilothouse.telemetry.metrics import GatewayMetrics
    m = GatewayMetrics(multiprocess_dir=sys.argv[1])
    m.request_started()
    for _ in range(int(sys.argv[2])):
        m.observe_request(alias="chat", provider="p", status=200, latency_s=0.2, input_tokens=5)
    if sys.argv[3] == "close":
        m.request_finished()
        m.close()
    else:
        body, _ = m.render()
        sys.stdout.write(body.decode())
    """
)


def test_workers_share_one_scrape_in_multiprocess_mode(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    (directory).mkdir()
    (directory / "counter_999999.db").write_bytes(b"stale")
    env = {**os.environ, **prepare_multiprocess_dir(directory)}
    assert not (directory / "counter_999999.db").exists()
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)

    def run(count: int, mode: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _WORKER, str(directory), str(count), mode],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    run(2, "close")  # a worker that served 2 requests and shut down cleanly
    body = run(3, "render")  # a live worker answering the scrape
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    assert (
        value(samples, "pilothouse_requests_total", alias="chat", provider="p", status="200") == 5
    )
    assert value(samples, "pilothouse_input_tokens_total", alias="chat", provider="p") == 25
    assert value(samples, "pilothouse_request_duration_seconds_count", alias="chat") == 5
    # The closed worker's in-flight gauge is gone; only the scraping worker's request counts.
    assert value(samples, "pilothouse_in_flight_requests") == 1
