"""Added latency of each client API the gateway speaks, next to chat completions.

The Responses API (``/v1/responses``) and Anthropic's Messages API
(``/v1/messages``) are translated to the gateway's canonical chat request and
back, so what they cost is chat's overhead plus the translation (and, for
Responses with ``store`` on, keeping the response). This runs the same small
request through the direct mock upstream, pilothouse's chat completions,
Responses and Messages, interleaved round by round so drift of a shared
machine hits all alike, and reports p50/p99 latency and what each API adds
over the direct call and over pilothouse's own chat completions.

    python benchmarks/api_surface.py --requests 2000 --rounds 3 --out api-surface.json
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import servers
from report import environment

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "loadgen.py"
APIS = {"chat": "/v1/chat/completions", "responses": "/v1/responses", "messages": "/v1/messages"}


def load(url: str, api: str, key: str | None, stream: bool, args: argparse.Namespace) -> Any:
    cmd = [sys.executable, str(LOADGEN), "--url", url, "--model", "bench", "--api", api]
    cmd += ["--requests", str(args.requests), "--concurrency", str(args.concurrency)]
    cmd += ["--warmup", str(args.warmup)]
    if key:
        cmd += ["--key", key]
    if stream:
        cmd.append("--stream")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-1500:])
    return orjson.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write to benchmarks/results/NAME")
    parser.add_argument("--pilothouse-src", default=None, help="run the gateway from this src/")
    args = parser.parse_args()
    # What report.environment reads: no LiteLLM here, no pinning, no nice.
    args.bench_venv, args.nice, args.client_cpus, args.gateway_cpus = "/nonexistent", 0, None, None
    work = Path(tempfile.mkdtemp(prefix="ph-api-bench-"))
    mock = servers.start_mock(servers.free_port(9300), None, work)
    gateway = servers.start_pilothouse(
        str(Path(sys.executable).with_name("pilothouse")),
        servers.free_port(9301),
        int(mock.base_url.rsplit(":", 1)[1]),
        None,
        work,
        "warning",
        src=args.pilothouse_src,
    )
    samples: dict[str, dict[str, list[float]]] = {}
    try:
        for _ in range(args.rounds):
            for stream in (False, True):
                mode = "stream" if stream else "json"
                runs = {"direct": load(mock.base_url + APIS["chat"], "chat", None, stream, args)}
                for api, path in APIS.items():
                    runs[api] = load(gateway.base_url + path, api, gateway.key, stream, args)
                for name, result in runs.items():
                    if result.get("errors"):
                        raise RuntimeError(f"{name}/{mode}: {result['errors']} errors: {result}")
                    cell = samples.setdefault(f"{mode}/{name}", {"p50": [], "p99": []})
                    cell["p50"].append(result["latency_ms"]["p50"])
                    cell["p99"].append(result["latency_ms"]["p99"])
    finally:
        gateway.stop()
        mock.stop()
    report = summarise(samples)
    report["environment"] = environment(args, sys.argv)
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.out:
        (HERE / "results" / args.out).write_text(text + "\n")


def summarise(samples: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Median over rounds of p50/p99, and each API's addition over direct and over chat."""
    med = {k: {q: statistics.median(v) for q, v in cell.items()} for k, cell in samples.items()}
    out: dict[str, Any] = {"latency_ms": med, "added_ms": {}}
    for mode in ("json", "stream"):
        direct, chat = med[f"{mode}/direct"], med[f"{mode}/chat"]
        for api in APIS:
            own = med[f"{mode}/{api}"]
            out["added_ms"][f"{mode}/{api}"] = {
                f"{q}_vs_direct": round(own[q] - direct[q], 3) for q in ("p50", "p99")
            } | {f"{q}_vs_chat": round(own[q] - chat[q], 3) for q in ("p50", "p99")}
    return out


if __name__ == "__main__":
    main()
