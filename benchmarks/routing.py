"""Routing decision overhead per request; prints one JSON document.

Times what the gateway adds on the request path for a routing decision, with
no upstream: the issue's five ``rules`` (metadata, input length, tools,
budget share, baseline difficulty) over a mix of requests that each stop at a
different rule, and the target strategies (``weighted``, ``latency``,
``cost``) ordering three targets. Each decision is timed alone with
``perf_counter_ns``; p50/p95/p99 in microseconds. Target: rules p50 < 50 µs.

Run: PYTHONPATH=src python benchmarks/routing.py [--n 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from pilothouse.config.load import parse_settings
from pilothouse.gateway.context import RequestContext
from pilothouse.routing.features import Features
from pilothouse.routing.router import Router

HERE = Path(__file__).resolve().parent
POLICY = """
providers:
  c: {type: chaos}
models:
  chat:
    routing:
      strategy: rules
      rules:
        - {when: {metadata.team: legal}, use: chat-strong}
        - {when: {input_tokens: {gt: 6000}}, use: chat-long}
        - {when: {requires: [tools]}, use: chat-tools}
        - {when: {budget_used: {gt: 0.8}}, use: chat-cheap}
        - {when: {difficulty: {lt: 0.3}}, use: chat-cheap}
      default: chat-standard
  chat-strong: {targets: [{provider: c, model: gpt-4o}]}
  chat-long: {targets: [{provider: c, model: gpt-4o}]}
  chat-tools: {targets: [{provider: c, model: gpt-4o-mini}]}
  chat-cheap: {targets: [{provider: c, model: gpt-4o-mini}]}
  chat-standard: {targets: [{provider: c, model: gpt-4o-mini}]}
"""
STRATEGY_TARGETS = [
    {"provider": "c", "model": "gpt-4o", "weight": 1},
    {"provider": "c", "model": "gpt-4o-mini", "weight": 3, "capabilities": ["tools"]},
    {"provider": "c", "model": "gpt-3.5-turbo", "weight": 1},
]
QUESTION = "Summarise the attached meeting notes and list the three open decisions. " * 3
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


def requests() -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    def body(text: str, **extra: Any) -> dict[str, Any]:
        return {"model": "chat", "messages": [{"role": "user", "content": text}], **extra}

    return [
        ("legal (rule 1)", body(QUESTION), {"team": "legal"}),
        ("long (rule 2)", body("word " * 6000), None),
        ("tools (rule 3)", body(QUESTION, tools=TOOLS), None),
        ("easy (rule 5, difficulty)", body("hi, thanks"), {"team": "web"}),
        ("default (all 5 checked)", body(QUESTION), {"team": "web"}),
    ]


def percentiles(ns: list[int]) -> dict[str, float]:
    us = sorted(n / 1000 for n in ns)
    return {
        "p50_us": round(us[len(us) // 2], 2),
        "p95_us": round(us[int(len(us) * 0.95)], 2),
        "p99_us": round(us[int(len(us) * 0.99)], 2),
    }


async def rules_round(router: Router, n: int) -> dict[str, Any]:
    policy = router.policies["chat"]
    mix = requests()
    spent = 0.42

    async def share() -> float:
        return spent  # the budget state admission reads (memory backend: a dict lookup)

    out: dict[str, Any] = {}
    everything: list[int] = []
    for name, body, metadata in mix:
        samples = []
        for _ in range(n // len(mix)):
            t0 = time.perf_counter_ns()
            features = Features(body, metadata, None)
            await policy.decide(features, share)
            samples.append(time.perf_counter_ns() - t0)
        out[name] = percentiles(samples)
        everything += samples
    out["all"] = percentiles(everything)
    return out


def strategy_round(router: Router, n: int) -> dict[str, Any]:
    out = {}
    body = {"model": "x", "messages": [{"role": "user", "content": QUESTION}]}
    for alias in ("weighted", "latency", "cost"):
        route = router.route(alias)
        samples = []
        for _ in range(n):
            ctx = RequestContext(request_id="req_bench", endpoint="chat")
            t0 = time.perf_counter_ns()
            router.ordered(ctx, route, body)
            samples.append(time.perf_counter_ns() - t0)
        out[alias] = percentiles(samples)
    return out


def build_router() -> Router:
    raw = yaml.safe_load(POLICY)
    for strategy in ("weighted", "latency", "cost"):
        raw["models"][strategy] = {"routing": {"strategy": strategy}, "targets": STRATEGY_TARGETS}
    settings = parse_settings(raw, source="<benchmark>")
    from pilothouse.gateway.runtime import build_providers

    router = Router(settings, build_providers(settings))
    for i, target in enumerate(router.route("latency").targets):  # measured targets
        router._observe(router.route("latency"), target, 0.05 * (i + 1), False)
    return router


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000, help="decisions per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    router = build_router()
    asyncio.run(rules_round(router, 2_000))  # warm-up
    rounds = []
    for i in range(args.rounds):
        rounds.append(
            {
                "round": i + 1,
                "rules": asyncio.run(rules_round(router, args.n)),
                "strategies": strategy_round(router, args.n // 4),
            }
        )
    p50s = [r["rules"]["all"]["p50_us"] for r in rounds]
    commit = subprocess.run(
        ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(
        json.dumps(
            {
                "benchmark": "routing decision overhead",
                "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                },
                "commit": commit,
                "n_per_round": args.n,
                "rules_p50_us_median_of_rounds": statistics.median(p50s),
                "target_rules_p50_us": 50,
                "rounds": rounds,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
