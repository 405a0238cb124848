"""Turn raw overhead-benchmark runs into the comparison people read.

Kept apart from the orchestration so the arithmetic (differences to direct,
ratios, pass/fail against the project's targets) is easy to audit.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import shlex
import statistics
import subprocess
from pathlib import Path
from typing import Any

import servers

HERE = Path(__file__).resolve().parent
GATEWAYS = ("bare", "pilothouse", "litellm")
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
    src = args.pilothouse_src if getattr(args, "pilothouse_src", None) else None
    return {
        "pilothouse_src": src or str(HERE.parent / "src"),
        "date_utc": _sh(["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "cpu_model": lscpu.get("Model name", "").strip(),
        "cpus": lscpu.get("CPU(s)", "").strip(),
        "memory": (_sh(["free", "-h"]).splitlines() or ["", ""])[1].split()[1:2],
        "kernel": platform.release(),
        "python": platform.python_version(),
        # With --pilothouse-src the code under test is that directory, not the work tree.
        "pilothouse_commit": None
        if src
        else _sh(["git", "-C", repo, "rev-parse", "--short", "HEAD"]),
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
        "nice": args.nice,
        "pinning": {"client_and_mock_cpus": args.client_cpus, "gateway_cpus": args.gateway_cpus},
        "command": shlex.join(["python", *argv]),
    }


def compact(run: dict[str, Any]) -> dict[str, Any]:
    """The fields of one client run worth keeping in the report."""
    if run.get("failed"):
        return {"failed": True, "stderr": run.get("stderr")}
    keep = (
        "round",
        "rps",
        "errors",
        "statuses",
        "unsent",
        "unfinished",
        "stopped_at_deadline",
        "latency_ms",
        "ttfb_ms",
        "service_ms",
        "pacing_lateness_ms",
        "completed",
        "elapsed_s",
        "cpu",
        "error_examples",
        "loop_lag_p99_ms",
    )
    out = {k: run[k] for k in keep if k in run}
    out["upstream_matches_client"] = run.get("upstream_requests") == run.get("client_requests")
    return out


def clean(run: dict[str, Any], rate: float) -> bool:
    """Sustained means: no errors, and an open loop kept its schedule."""
    if run.get("failed") or run.get("errors") != 0:
        return False
    if "unsent" in run:
        return run["unsent"] == 0 and run["unfinished"] == 0 and run["rps"] >= 0.97 * rate
    return True


def median_of(rounds: list[dict[str, Any]], *path: str) -> float | None:
    """Median of one numeric field across rounds (None if any round lacks it)."""
    values = []
    for run in rounds:
        value: Any = run
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, int | float):
            return None
        values.append(value)
    return round(statistics.median(values), 3) if values else None


def aggregate(rounds: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """One line per target and pattern: medians over rounds, errors summed."""
    out: dict[str, Any] = {
        "rounds": len(rounds),
        "clean": all(clean(r, rate) for r in rounds),
        "errors": sum(r.get("errors", 0) for r in rounds if not r.get("failed")),
        "rps": median_of(rounds, "rps"),
    }
    for group in ("latency_ms", "ttfb_ms", "service_ms", "pacing_lateness_ms"):
        if group in rounds[0]:
            out[group] = {q: median_of(rounds, group, q) for q in rounds[0][group]}
    out["gateway_cpu_us_per_request"] = median_of(rounds, "cpu", "gateway_us_per_request")
    out["foreign_cpu_share_max"] = max(r.get("cpu", {}).get("foreign_share", 0) for r in rounds)
    out["upstream_matches_client"] = all(
        r.get("upstream_requests") == r.get("client_requests") for r in rounds
    )
    return out


def _diff(run: dict[str, Any], direct: dict[str, Any]) -> dict[str, float]:
    out = {}
    for group, prefix in (("latency_ms", ""), ("service_ms", "service_"), ("ttfb_ms", "ttfb_")):
        if group in run and group in direct:
            out |= {f"{prefix}{q}": run[group][q] - direct[group][q] for q in ("p50", "p99")}
    return out


def _foreign(*runs: dict[str, Any]) -> float:
    """The worst foreign CPU share seen by any of ``runs``."""
    return max(r.get("cpu", {}).get("foreign_share", 1.0) for r in runs)


def added_latency(
    runs: dict[str, dict[str, list[dict[str, Any]]]], rate: float
) -> dict[str, dict[str, Any]]:
    """Gateway minus direct, paired round by round, then the median over rounds."""
    out: dict[str, dict[str, Any]] = {}
    for key, by_target in runs.items():
        directs = {r["round"]: r for r in by_target.get("direct", []) if not r.get("failed")}
        for gw in GATEWAYS:
            pairs = [
                (r, directs[r["round"]])
                for r in by_target.get(gw, [])
                if not r.get("failed") and r["round"] in directs
            ]
            if not pairs:
                continue
            diffs = [_diff(r, d) for r, d in pairs]
            entry: dict[str, Any] = {
                k: round(statistics.median(d[k] for d in diffs), 3) for k in diffs[0]
            }
            entry["per_round_p99"] = [round(d["p99"], 3) for d in diffs]
            quiet = min(range(len(pairs)), key=lambda i: _foreign(*pairs[i]))
            entry["quietest_round"] = {k: round(v, 3) for k, v in diffs[quiet].items()} | {
                "foreign_cpu_share": _foreign(*pairs[quiet])
            }
            entry["clean"] = all(clean(r, rate) for r, _ in pairs)
            out.setdefault(gw, {})[key] = entry
    return out


def vs_bare(added: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """pilothouse's added latency divided by the bare proxy's, per pattern (target <= 1.5)."""
    ph, bare = added.get("pilothouse", {}), added.get("bare", {})
    out: dict[str, dict[str, float | None]] = {}
    for key in ph.keys() & bare.keys():
        out[key] = {q: _ratio(ph[key].get(q), bare[key].get(q)) for q in ("p50", "p99")}
    return out


def max_sustained(
    runs: dict[str, dict[str, list[dict[str, Any]]]], rate: float
) -> dict[str, dict[str, Any]]:
    """Best closed-loop throughput (median over rounds) per target and mode, clean runs only."""
    out: dict[str, dict[str, Any]] = {}
    for key, by_target in runs.items():
        mode, pattern = key.split("/", 1)
        if pattern.startswith("open_"):
            continue
        for name, rounds in by_target.items():
            if not all(clean(r, rate) for r in rounds):
                continue
            rps = median_of(rounds, "rps") or 0.0
            best = out.setdefault(name, {}).get(mode)
            if best is None or rps > best["rps"]:
                out[name][mode] = {"rps": rps, "pattern": pattern}
    return out


def cpu_capacity(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    """Requests/s one core could carry at the gateway's measured CPU cost per request.

    On a machine shared with other work, throughput depends on how much CPU
    the gateway was *given*; CPU seconds per request do not, so this is the
    steadier basis for comparing gateways (it ignores queueing and I/O waits).
    Uses the cheapest closed-loop pattern, i.e. the one with the best batching.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, by_target in runs.items():
        mode, pattern = key.split("/", 1)
        if pattern.startswith("open_"):
            continue
        for name, rounds in by_target.items():
            us = median_of(rounds, "cpu", "gateway_us_per_request")
            if name == "direct" or not us:
                continue
            best = out.setdefault(name, {}).get(mode)
            if best is None or us < best["cpu_us_per_request"]:
                out[name][mode] = {
                    "cpu_us_per_request": us,
                    "one_core_rps": round(1e6 / us),
                    "pattern": pattern,
                }
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a and b else None


def verdicts(
    args: argparse.Namespace,
    added: dict[str, Any],
    best: dict[str, Any],
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
        out["open_loop_clean"] = ph["clean"]
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
    runs = raw["runs"]
    added = added_latency(runs, args.rate)
    best = max_sustained(runs, args.rate)
    return {
        "settings": {
            k: getattr(args, k)
            for k in (
                "rounds",
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
        "targets": verdicts(args, added, best),
        "added_latency_ms": added,
        "max_sustained_rps": best,
        "pilothouse_vs_bare_proxy": vs_bare(added),
        "throughput_vs_direct": {
            name: {
                m: _ratio(v.get("rps"), best.get("direct", {}).get(m, {}).get("rps"))
                for m, v in modes.items()
            }
            for name, modes in best.items()
            if name != "direct"
        },
        "client_ceiling_rps": best.get("direct"),
        "cpu_capacity": cpu_capacity(runs),
        "summary": {
            key: {name: aggregate(rounds, args.rate) for name, rounds in by.items()}
            for key, by in runs.items()
        },
        "rss": raw["rss"],
        "usage_accounting": raw["usage_accounting"],
        "wrk_crosscheck": raw["wrk_crosscheck"],
        "unavailable": raw["unavailable"],
        "gateway_exit_codes": raw["exit_codes"],
        "runs": {
            key: {name: [compact(r) for r in rounds] for name, rounds in by.items()}
            for key, by in runs.items()
        },
        "gateway_configs": raw["configs"],
    }
