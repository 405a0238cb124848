"""Added latency of serving ``prompt:NAME@LABEL`` instead of a plain alias (render + lookup).

Runs the gateway's own prompt stage (`releases.serving.apply`: label cache
lookup, variable checks, sandboxed render, body rewrite) against a real store
with a warm cache, and the plain-alias path (the `is_prompt` test only), in
one process, interleaved. Prints one JSON object; takes a few seconds.

    .venv/bin/python benchmarks/prompt_overhead.py [--n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from pilothouse.gateway.context import RequestContext
from pilothouse.releases import serving
from pilothouse.releases.registry import PromptRegistry
from pilothouse.store.db import create_engine, migrate

BUNDLE = {
    "name": "support-answer",
    "model": "chat",
    "params": {"temperature": 0.2, "max_tokens": 300},
    "messages": [
        {"role": "system", "content": "You answer questions about {{ product }} briefly."},
        {"role": "user", "content": "{{ question }}"},
    ],
    "variables": {
        "product": {"type": "string", "default": "pilothouse"},
        "question": {"type": "string", "required": True, "max_length": 4000},
    },
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(n: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'b.db'}")
        await migrate(engine)
        registry = PromptRegistry(engine)
        await registry.push(BUNDLE, actor="bench")
        await registry.move_label("support-answer", "prod", 1, actor="bench", reason=None)
        cache = serving.LabelCache(registry)
        prompt_body = {
            "model": "prompt:support-answer@prod",
            "prompt_variables": {"question": "How do I rotate a key?"},
        }
        plain_body = {
            "model": "chat",
            "messages": [{"role": "user", "content": "How do I rotate a key?"}],
        }
        await serving.apply(cache, RequestContext("req_x", "chat"), dict(prompt_body))  # warm
        prompt_us: list[float] = []
        plain_us: list[float] = []
        for _ in range(n):
            ctx = RequestContext("req_x", "chat")
            body = dict(plain_body)
            t0 = time.perf_counter()
            if serving.is_prompt(body):
                body = await serving.apply(cache, ctx, body)
            plain_us.append((time.perf_counter() - t0) * 1e6)
            body = dict(prompt_body)
            t0 = time.perf_counter()
            if serving.is_prompt(body):
                body = await serving.apply(cache, ctx, body)
            prompt_us.append((time.perf_counter() - t0) * 1e6)
        await engine.dispose()
    added = [p - q for p, q in zip(prompt_us, plain_us, strict=True)]
    return {
        "benchmark": "prompt_overhead",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} py{platform.python_version()}",
        "n": n,
        "plain_alias_us": {
            "p50": round(pct(plain_us, 0.5), 2),
            "p99": round(pct(plain_us, 0.99), 2),
        },
        "prompt_label_us": {
            "p50": round(pct(prompt_us, 0.5), 2),
            "p99": round(pct(prompt_us, 0.99), 2),
            "mean": round(statistics.fmean(prompt_us), 2),
        },
        "added_us": {"p50": round(pct(added, 0.5), 2), "p99": round(pct(added, 0.99), 2)},
        "target_added_p50_us": 100.0,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    print(orjson.dumps(asyncio.run(main(args.n)), option=orjson.OPT_INDENT_2).decode())
