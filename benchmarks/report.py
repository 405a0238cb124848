"""Turn raw overhead-benchmark runs into the comparison people read.

Kept apart from the orchestration so the arithmetic (differences to direct,
ratios, pass/fail against the project's targets) is easy to audit.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import shlex
import subprocess
from pathlib import Path
from typing import Any

import servers

HERE = Path(__file__).resolve().parent
GATEWAYS = ("pilothouse", "litellm")
TARGET_ADDED_P50_MS = 1.0
TARGET_ADDED_P99_MS = 3.0
TARGET_THROUGHPUT_RATIO = 5.0


def _sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Machine, versions and the exact command, so a number can be reproduced."""
    lscpu = dict(line.split(":", 1) for line in _sh(["lscpu"]).splitlines() if ":" in line)
    repo = str(HERE.parent)
    return {
        "date_utc": _sh(["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "cpu_model": lscpu.get("Model name", "").strip(),
        "cpus": lscpu.get("CPU(s)", "").strip(),
        "memory": (_sh(["free", "-h"]).splitlines() or ["", ""])[1].split()[1:2],
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pilothouse_commit": _sh(["git", "-C", repo, "rev-parse", "--short", "HEAD"]),
        "pilothouse_tree_dirty": bool(
            _sh(["git", "-C", repo, "status", "--porcelain", "--", "src"])
        ),
        "versions": {
            "pilothouse": _version("pilothouse"),
            "litellm": servers.litellm_version(Path(args.bench_venv)),
            "uvloop": _version("uvloop"),
            "httptools": _version("httptools"),
            "uvicorn": _version("uvicorn"),
        },
        "pinning": {"client_and_mock_cpus": args.client_cpus, "gateway_cpus": args.gateway_cpus},
        "command": shlex.join(["python", *argv]),
    }


def compact(run: dict[str, Any]) -> dict[str, Any]:
    """The fields of one client run worth keeping in the report."""
    if run.get("failed"):
        return {"failed": True, "stderr": run.get("stderr")}
    keep = (
        "rps",
        "errors",
        "statuses",
        "unsent_or_unfinished",
        "latency_ms",
        "ttfb_ms",
        "service_ms",
        "completed",
        "elapsed_s",
        "error_examples",
    )
    out = {k: run[k] for k in keep if k in run}
    out["upstream_matches_client"] = run.get("upstream_requests") == run.get("client_requests")
    return out


def clean(run: dict[str, Any]) -> bool:
    """A run counts as sustained only with zero errors and nothing left unsent."""
    return not run.get("failed") and run.get("errors") == 0 and run.get("unsent_or_unfinished") == 0


def added_latency(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Gateway percentile minus direct percentile, for the same pattern."""
    out: dict[str, dict[str, Any]] = {}
    for key, by_target in runs.items():
        direct = by_target.get("direct", {})
        for gw in GATEWAYS:
            run = by_target.get(gw)
            if not run or run.get("failed") or direct.get("failed"):
                continue
            entry = {
                q: round(run["latency_ms"][q] - direct["latency_ms"][q], 3) for q in ("p50", "p99")
            }
            if "service_ms" in run and "service_ms" in direct:
                entry |= {
                    f"service_{q}": round(run["service_ms"][q] - direct["service_ms"][q], 3)
                    for q in ("p50", "p99")
                }
            if "ttfb_ms" in run and "ttfb_ms" in direct:
                entry |= {
                    f"ttfb_{q}": round(run["ttfb_ms"][q] - direct["ttfb_ms"][q], 3)
                    for q in ("p50", "p99")
                }
            entry["clean"] = clean(run)
            out.setdefault(gw, {})[key] = entry
    return out


def max_sustained(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Best closed-loop throughput per target and mode among clean runs."""
    out: dict[str, dict[str, Any]] = {}
    for key, by_target in runs.items():
        mode, pattern = key.split("/", 1)
        if pattern.startswith("open_"):
            continue
        for name, run in by_target.items():
            if not clean(run):
                continue
            best = out.setdefault(name, {}).get(mode)
            if best is None or run["rps"] > best["rps"]:
                out[name][mode] = {"rps": run["rps"], "pattern": pattern}
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def verdicts(
    args: argparse.Namespace,
    added: dict[str, Any],
    best: dict[str, Any],
    runs: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The project's stated targets, checked on the numbers of this run."""
    key = f"json/open_{args.rate:g}rps"
    ph = added.get("pilothouse", {}).get(key)
    out: dict[str, Any] = {"open_loop_pattern": key}
    if ph:
        out["pilothouse_added_p50_ms"] = ph["p50"]
        out["pilothouse_added_p99_ms"] = ph["p99"]
        out["added_p50_below_1ms"] = ph["p50"] < TARGET_ADDED_P50_MS and ph["clean"]
        out["added_p99_below_3ms"] = ph["p99"] < TARGET_ADDED_P99_MS and ph["clean"]
        out["open_loop_clean"] = ph["clean"] and runs[key]["pilothouse"].get("rps", 0) >= (
            0.97 * args.rate
        )
    for mode in args.modes:
        r = _ratio(
            best.get("pilothouse", {}).get(mode, {}).get("rps"),
            best.get("litellm", {}).get(mode, {}).get("rps"),
        )
        out[f"throughput_ratio_vs_litellm_{mode}"] = r
        out[f"throughput_at_least_5x_litellm_{mode}"] = (
            r is not None and r >= TARGET_THROUGHPUT_RATIO
        )
    return out


def summarise(raw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    runs = {
        key: {name: compact(run) for name, run in by.items()} for key, by in raw["runs"].items()
    }
    added = added_latency(raw["runs"])
    best = max_sustained(raw["runs"])
    return {
        "settings": {
            k: getattr(args, k)
            for k in (
                "seq_requests",
                "requests",
                "concurrency",
                "rate",
                "rate_seconds",
                "warmup",
                "phase_seconds",
                "rss_requests",
                "soak_seconds",
                "modes",
                "open_connections",
            )
        },
        "targets": verdicts(args, added, best, raw["runs"]),
        "added_latency_ms": added,
        "max_sustained_rps": best,
        "throughput_vs_direct": {
            name: {
                m: _ratio(v.get("rps"), best.get("direct", {}).get(m, {}).get("rps"))
                for m, v in modes.items()
            }
            for name, modes in best.items()
            if name != "direct"
        },
        "client_ceiling_rps": best.get("direct"),
        "rss": raw["rss"],
        "usage_accounting": raw["usage_accounting"],
        "wrk_crosscheck": raw["wrk_crosscheck"],
        "unavailable": raw["unavailable"],
        "gateway_exit_codes": raw["exit_codes"],
        "runs": runs,
        "gateway_configs": raw["configs"],
    }
