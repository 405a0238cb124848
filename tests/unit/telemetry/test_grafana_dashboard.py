"""deploy/grafana/pilothouse.json only queries metrics the gateway really exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse.telemetry.metrics import GatewayMetrics

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "pilothouse.json"
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
}  # fmt: skip


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from panels(item.get("panels", []))


def expressions(board: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(board["panels"]) for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            # label_values(metric, label): only the metric is a metric name.
            exprs.append(re.sub(r"label_values\(\s*([^,)]*)(?:,[^)]*)?\)", r"\1", query))
    return exprs


def metric_names(expr: str) -> set[str]:
    """Identifiers in a PromQL expression that name series (not functions, labels, keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\w+", " ", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*)\s*(\()?", text):
        if match.group(2) is None and match.group(1).lower() not in PROMQL_WORDS:
            names.add(match.group(1))
    return names


def exported_names() -> set[str]:
    m = GatewayMetrics()
    m.observe_request(
        alias="chat", provider="p", status=200, latency_s=0.5, ttft_s=0.1, input_tokens=1,
        output_tokens=1, cost_usd=0.01, key_id="k", team="t", cache_hit=True,
    )  # fmt: skip
    m.observe_request(alias="chat", provider="p", status=200, latency_s=0.5, cache_hit=False)
    m.observe_attempt(provider="p", model="m", outcome="ok", latency_s=0.4)
    m.set_breaker_state("p/m", "closed")
    m.request_started()
    m.set_queue_depth("ledger", 0)
    m.queue_dropped_inc("ledger", 0)
    m.set_budget_remaining("k", 1)
    m.set_slo_status(slo="s", alias="chat", budget_remaining=1.0, burn_rates={"1h": 0.0})
    body = m.render()[0].decode()
    return {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line[:1].isalpha()}


def test_extractor_sees_metrics_and_ignores_functions_labels_and_variables() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, alias) (rate(foo_bucket{alias=~"$alias"}'
        "[$__rate_interval]))) / ignoring(x) bar_total offset 5m > 1e3 and on (a) baz"
    )
    assert metric_names(expr) == {"foo_bucket", "bar_total", "baz"}


def test_every_dashboard_query_uses_exported_metrics() -> None:
    exported = exported_names()
    used = set().union(*(metric_names(e) for e in expressions(dashboard())))
    assert len(used) >= 12
    assert used <= exported, f"not exported by GatewayMetrics: {sorted(used - exported)}"


def test_a_renamed_metric_would_be_caught() -> None:
    assert "pilothouse_request_latency_seconds_bucket" not in exported_names()
    assert "pilothouse_requests_total" in exported_names()


@pytest.mark.parametrize(
    "topic",
    ["requests per second", "error ratio", "p50 / p95 / p99", "time to first token", "tokens",
     "by model alias", "by team", "keys by spend", "cache hit rate", "breaker", "burn rate",
     "error budget"],
)  # fmt: skip
def test_dashboard_covers_what_on_call_and_finance_look_for(topic: str) -> None:
    titles = [p.get("title", "").lower() for p in panels(dashboard()["panels"])]
    assert any(topic in title for title in titles), topic


def test_panels_use_the_templated_datasource() -> None:
    for panel in panels(dashboard()["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
