"""What a remote content classifier adds to a request: the gateway's own cost of the call.

One in-process gateway (``embedded_gateway``, full pipeline, SQLite store), chaos
upstreams with no injected latency, so the difference between an alias with an
input ``content`` guard using ``moderation`` or ``judge`` and the same alias with
no policy is the classifier's path through the gateway (child request, routing,
usage row, trace, verdict parsing) and not a provider's think time. Requests are
interleaved (plain, moderation, judge) so load drifts hit all three alike; CPU
time is ``time.process_time`` over the whole process. Prints one JSON object.

    PYTHONPATH=src .venv/bin/python benchmarks/guard_classifiers.py [--n 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pilothouse.config.load import parse_settings
from pilothouse.gateway.embedded import embedded_gateway

VERDICT = '{"categories": {"violence": 0.02, "hate": 0.01}}'


def config(tmp: Path) -> dict[str, Any]:
    chat = {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]}
    guard = {"type": "content", "action": "block"}
    moderation = {
        **guard,
        "categories": ["harassment", "violence"],
        "classifier": {"type": "moderation", "model": "mod"},
    }
    judge = {
        **guard,
        "categories": ["violence", "hate"],
        "classifier": {"type": "judge", "model": "judge"},
    }
    return {
        "store": {"url": f"sqlite:///{tmp / 'b.db'}", "spool_path": str(tmp / "spool.jsonl")},
        "providers": {
            "chaos": {"type": "chaos"},
            "moderator": {"type": "chaos", "flag_words": ["grobnak"]},
            "judge": {"type": "chaos", "reply": VERDICT},
        },
        "guards": {"moderation": {"input": [moderation]}, "judge": {"input": [judge]}},
        "models": {
            "plain": chat,
            "with-moderation": {**chat, "guards": "moderation"},
            "with-judge": {**chat, "guards": "judge"},
            "mod": {"targets": [{"provider": "moderator", "model": "omni-moderation-latest"}]},
            "judge": {"targets": [{"provider": "judge", "model": "gpt-4o-mini"}]},
        },
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def main(n: int) -> dict[str, Any]:
    aliases = ("plain", "with-moderation", "with-judge")
    wall: dict[str, list[float]] = {a: [] for a in aliases}
    cpu: dict[str, list[float]] = {a: [] for a in aliases}
    with tempfile.TemporaryDirectory() as tmp:
        settings = parse_settings(config(Path(tmp)), source="<bench>")
        async with embedded_gateway(settings) as gw:
            for i in range(n + 20):
                for alias in aliases:
                    body = {
                        "model": alias,
                        "messages": [{"role": "user", "content": f"a question about tulips {i}"}],
                    }
                    c0, t0 = time.process_time(), time.perf_counter()
                    resp = await gw.client.post("/chat/completions", json=body)
                    t1, c1 = time.perf_counter(), time.process_time()
                    assert resp.status_code == 200, resp.text
                    if i >= 20:  # warm-up rounds are not counted
                        wall[alias].append((t1 - t0) * 1000)
                        cpu[alias].append((c1 - c0) * 1000)
    out: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "n": n,
    }
    for alias in aliases:
        out[alias] = {
            "wall_p50_ms": pct(wall[alias], 0.5),
            "wall_p99_ms": pct(wall[alias], 0.99),
            "cpu_p50_ms": pct(cpu[alias], 0.5),
        }
        if alias != "plain":
            added = [a - b for a, b in zip(wall[alias], wall["plain"], strict=True)]
            added_cpu = [a - b for a, b in zip(cpu[alias], cpu["plain"], strict=True)]
            out[alias]["added_wall_p50_ms"] = round(statistics.median(added), 3)
            out[alias]["added_cpu_p50_ms"] = round(statistics.median(added_cpu), 3)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    print(orjson.dumps(asyncio.run(main(args.n)), option=orjson.OPT_INDENT_2).decode())
