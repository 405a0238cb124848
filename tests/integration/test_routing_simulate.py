"""`pilothouse routing simulate`: recorded traffic replayed through a candidate policy."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.gateway import base_config, running_gateway, write_config
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration
PRICES = {
    "standard": {"input": "2", "output": "8"},
    "strong": {"input": "10", "output": "30"},
    "cheap": {"input": "0.1", "output": "0.4"},
}
POLICY = """
models:
  chat:
    routing:
      strategy: rules
      rules:
        - {when: {metadata.team: legal}, use: chat-strong, name: legal}
        - {when: {input_tokens: {gt: 50}}, use: chat-standard, name: long}
      default: chat-cheap
  chat-strong: {targets: [{provider: chaos, model: strong}]}
  chat-standard: {targets: [{provider: chaos, model: standard}]}
  chat-cheap: {targets: [{provider: chaos, model: cheap}]}
prices:
  cheap: {input: "0.1", output: "0.4"}
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilothouse.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def price(model: str, row: dict[str, int]) -> Decimal:
    p = PRICES[model]
    return (
        row["input_tokens"] * Decimal(p["input"]) + row["output_tokens"] * Decimal(p["output"])
    ) / 10**6


def test_simulate_reports_cost_and_alias_mix_against_what_happened(
    store_url: str, tmp_path: Path
) -> None:
    models = {"chat": {"targets": [{"provider": "chaos", "model": "standard"}]}}
    prices = {"standard": PRICES["standard"], "strong": PRICES["strong"]}
    config = base_config(store_url, tmp_path, models=models, prices=prices)
    path = write_config(tmp_path / "c.yaml", config)
    with running_gateway(config) as gw:
        key = gw.create_key()
        sent = [("legal", "short question")] * 3 + [(None, "long " * 80)] * 2 + [(None, "hi")] * 5
        for team, text in sent:
            headers = {"Authorization": f"Bearer {key}"}
            if team:
                headers["x-pilothouse-metadata"] = json.dumps({"team": team})
            resp = httpx.post(
                gw.url + "/v1/chat/completions",
                json={"model": "chat", "messages": [{"role": "user", "content": text}]},
                headers=headers,
                timeout=30,
            )
            assert resp.status_code == 200
        rows = usage_rows(gw)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    out = cli("routing", "simulate", str(policy), "--since", "7d", "--json", "--config", str(path))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["requests"] == 10 and report["changed_alias"] == 10 and report["errors"] == 0
    mix = report["aliases"]
    assert {a: m["actual_requests"] for a, m in mix.items() if m["actual_requests"]} == {"chat": 10}
    simulated = {a: m["simulated_requests"] for a, m in mix.items() if m["simulated_requests"]}
    assert simulated == {"chat-strong": 3, "chat-standard": 2, "chat-cheap": 5}
    assert report["rules"] == {"legal": 3, "long": 2, "default": 5}
    actual = sum(price("standard", r) for r in rows)
    expected = sum(
        price(
            "strong"
            if (r["metadata"] or {}).get("team") == "legal"
            else ("standard" if r["input_tokens"] > 50 else "cheap"),
            r,
        )
        for r in rows
    )
    assert Decimal(report["actual_cost_usd"]) == actual.quantize(Decimal("0.000001"))
    assert Decimal(report["simulated_cost_usd"]) == expected.quantize(Decimal("0.000001"))
    change = report["per_request_change_usd"]
    assert change["low"] <= change["mean"] <= change["high"]

    table = cli("routing", "simulate", str(policy), "--config", str(path))
    assert table.returncode == 0, table.stderr
    assert "chat-strong" in table.stdout and "95% CI" in table.stdout

    whole = tmp_path / "whole.yaml"  # a whole config as the policy: its own store is replayed
    candidate = yaml.safe_load(POLICY)
    merged = {**config, "models": candidate["models"], "prices": {**prices, **candidate["prices"]}}
    whole.write_text(yaml.safe_dump(merged))
    alone = cli("routing", "simulate", str(whole), "--since", "7d", "--json")
    assert alone.returncode == 0, alone.stderr
    assert json.loads(alone.stdout)["simulated_cost_usd"] == report["simulated_cost_usd"]

    bad = tmp_path / "bad.yaml"
    rules = {"strategy": "rules", "rules": [{"use": "chat-nowhere"}], "default": "chat"}
    bad.write_text(yaml.safe_dump({"models": {"chat": {"routing": rules}}}))
    refused = cli("routing", "simulate", str(bad), "--config", str(path))
    assert refused.returncode == 2
    assert "models.chat.routing.rules[0].use" in refused.stderr
