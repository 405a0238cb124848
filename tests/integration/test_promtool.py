"""The generated SLO rules, checked and unit-tested by Prometheus' own promtool.

The scripted traffic is the same for promtool and for the in-gateway
SLOTracker, and both must reach the hand-written expectations: that is what
"equivalent rules" means here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pilothouse.telemetry.config import SLOConfig
from pilothouse.telemetry.rules import ALERT_NAME, build_rule_groups, render_rules_yaml
from pilothouse.telemetry.slo import SLOTracker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SLOS = [
    SLOConfig(name="chat-av", alias="chat", objective=0.995),
    SLOConfig(name="search-av", alias="search", objective=0.995),
    SLOConfig(
        name="chat-lat", alias="chat", sli="latency", objective=0.99, latency_threshold_s=10.0
    ),
]
# Per minute, for 120 minutes. chat: 10% errors for the first hour (20x burn), then clean.
# search: 2% errors throughout (4x burn). chat latency: 5% slower than 10 s (5x burn).
CHAT_OK = "0+90x60 5400+100x60"
CHAT_5XX = "0+10x60 600+0x60"
SEARCH_OK = "0+98x120"
SEARCH_5XX = "0+2x120"
LAT_FAST = "0+95x120"
LAT_COUNT = "0+100x120"

# (eval minute) -> {(slo, rule)} expected to fire.
EXPECTED: dict[int, set[tuple[str, str]]] = {
    60: {
        ("chat-av", "page_fast"), ("chat-av", "page_slow"), ("chat-av", "ticket"),
        ("search-av", "ticket"), ("chat-lat", "ticket"),
    },
    # Ten clean minutes: the fast page resolves (short window), slower ones still burn.
    70: {
        ("chat-av", "page_slow"), ("chat-av", "ticket"),
        ("search-av", "ticket"), ("chat-lat", "ticket"),
    },
}  # fmt: skip


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool not found (Debian package 'prometheus')"
        if os.environ.get("PILOTHOUSE_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(*args: str, cwd: Path) -> str:
    done = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_generated_rules_pass_promtool_check(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(render_rules_yaml(SLOS))
    assert "SUCCESS" in run("check", "rules", "rules.yml", cwd=tmp_path)
    out = run(
        "check", "rules", str(ROOT / "deploy/prometheus/pilothouse-slo-rules.yml"), cwd=tmp_path
    )
    assert "SUCCESS" in out


def _tracker_firing(minute: int) -> set[tuple[str, str]]:
    tracker = SLOTracker(SLOS)
    for m in range(120):
        at = m * 60.0 + 1  # events of minute m, seen by Prometheus at the m+1 sample
        for i in range(100):
            tracker.record("chat", 502 if m < 60 and i < 10 else 200, 11.0 if i < 5 else 1.0, at=at)
            tracker.record("search", 502 if i < 2 else 200, 1.0, at=at)
    return {(b.slo, b.rule) for b in tracker.evaluate(minute * 60.0) if b.firing}


@pytest.mark.parametrize("minute", sorted(EXPECTED))
def test_in_gateway_evaluator_meets_the_same_expectations(minute: int) -> None:
    assert _tracker_firing(minute) == EXPECTED[minute]


def test_promtool_fires_and_resolves_the_fast_burn_alert(tmp_path: Path) -> None:
    groups = build_rule_groups(SLOS)
    (tmp_path / "rules.yml").write_text(render_rules_yaml(SLOS))
    alert_rules = {
        (r["labels"]["slo"], r["labels"]["rule"]): r
        for g in groups["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    series = [
        ('pilothouse_requests_total{alias="chat",provider="openai",status="200"}', CHAT_OK),
        ('pilothouse_requests_total{alias="chat",provider="openai",status="502"}', CHAT_5XX),
        ('pilothouse_requests_total{alias="search",provider="openai",status="200"}', SEARCH_OK),
        ('pilothouse_requests_total{alias="search",provider="openai",status="502"}', SEARCH_5XX),
        ('pilothouse_request_duration_seconds_bucket{alias="chat",le="10.0"}', LAT_FAST),
        ('pilothouse_request_duration_seconds_count{alias="chat"}', LAT_COUNT),
    ]
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "alert_rule_test": [
                    {
                        "eval_time": f"{minute}m",
                        "alertname": ALERT_NAME,
                        "exp_alerts": [
                            {
                                "exp_labels": alert_rules[key]["labels"],
                                "exp_annotations": alert_rules[key]["annotations"],
                            }
                            for key in sorted(firing)
                        ],
                    }
                    for minute, firing in sorted(EXPECTED.items())
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    assert "SUCCESS" in run("test", "rules", "tests.yml", cwd=tmp_path)


def test_promtool_test_fails_when_expectations_are_wrong(tmp_path: Path) -> None:
    """Guards the test above: promtool really compares, so a silent pass is impossible."""
    (tmp_path / "rules.yml").write_text(render_rules_yaml(SLOS))
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'pilothouse_requests_total{alias="chat",status="200"}',
                        "values": "0+100x90",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "60m",
                        "alertname": ALERT_NAME,
                        "exp_alerts": [{"exp_labels": {"slo": "chat-av", "rule": "page_fast"}}],
                    }
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    done = subprocess.run(
        [promtool(), "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode != 0


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Every Grafana query parses in Prometheus once Grafana's variables are filled in."""
    board = json.loads((ROOT / "deploy/grafana/pilothouse.json").read_text())
    stack, exprs = list(board["panels"]), []
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        exprs += [t["expr"] for t in panel.get("targets", [])]
    values = {"$__rate_interval": "5m", "$alias": ".*", "$objective": "0.995"}
    rules = []
    for i, expr in enumerate(exprs):
        for var, value in values.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query:{i}", "expr": expr})
    (tmp_path / "dashboard.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    assert f"SUCCESS: {len(rules)} rules found" in run(
        "check", "rules", "dashboard.yml", cwd=tmp_path
    )


def test_example_prometheus_config_is_valid(tmp_path: Path) -> None:
    out = run("check", "config", str(ROOT / "deploy/prometheus/prometheus.yml"), cwd=tmp_path)
    assert "SUCCESS" in out
