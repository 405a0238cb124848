"""Render an overhead.py JSON report as the Markdown tables in docs/benchmarks.md.

Tables are generated, not typed, so the doc cannot drift from the numbers.

    python benchmarks/render_md.py benchmarks/results/overhead-full.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson

GATEWAYS = ("pilothouse", "litellm")


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def targets(rep: dict[str, Any]) -> str:
    t = rep["targets"]
    rows = [
        [
            "added p50 at open-loop rate < 1 ms",
            _f(t.get("pilothouse_added_p50_ms"), 3) + " ms",
            "yes" if t.get("added_p50_below_1ms") else "**no**",
        ],
        [
            "added p99 at open-loop rate < 3 ms",
            _f(t.get("pilothouse_added_p99_ms"), 3) + " ms",
            "yes" if t.get("added_p99_below_3ms") else "**no**",
        ],
    ]
    for mode in rep["settings"]["modes"]:
        ratio = t.get(f"throughput_ratio_vs_litellm_{mode}")
        ok = t.get(f"throughput_at_least_5x_litellm_{mode}")
        rows.append(
            [
                f"sustained throughput >= 5x LiteLLM ({mode})",
                _f(ratio, 1) + "x",
                "yes" if ok else "**no**",
            ]
        )
    return _table(["target", "measured", "met"], rows)


def latency(rep: dict[str, Any]) -> str:
    """Per pattern: absolute percentiles of each target, then pilothouse's addition."""
    rows = []
    for key, by in rep["summary"].items():
        for name, agg in by.items():
            lat = agg.get("latency_ms", {})
            added = rep["added_latency_ms"].get(name, {}).get(key, {})
            rows.append(
                [
                    key,
                    name,
                    _f(agg.get("rps"), 0),
                    _f(lat.get("p50"), 3),
                    _f(lat.get("p99"), 3),
                    _f(added.get("p50"), 3) if added else "",
                    _f(added.get("p99"), 3) if added else "",
                    _f(agg.get("gateway_cpu_us_per_request"), 0) if name != "direct" else "",
                    str(agg.get("errors")),
                    "yes" if agg.get("clean") else "no",
                    _f(agg.get("foreign_cpu_share_max"), 2),
                ]
            )
    header = [
        "pattern",
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "added p50",
        "added p99",
        "gateway CPU µs/req",
        "errors",
        "sustained",
        "foreign CPU (max)",
    ]
    return _table(header, rows)


def throughput(rep: dict[str, Any]) -> str:
    best = rep["max_sustained_rps"]
    rows = []
    for name in ("direct", *GATEWAYS):
        for mode, v in best.get(name, {}).items():
            vs = rep["throughput_vs_direct"].get(name, {}).get(mode)
            rows.append(
                [name, mode, _f(v["rps"], 0), v["pattern"], _f(vs, 3) if vs is not None else "n/a"]
            )
    return _table(["target", "mode", "max sustained req/s", "at", "vs direct"], rows)


def capacity(rep: dict[str, Any]) -> str:
    cap = rep.get("cpu_capacity", {})
    rows = []
    for mode in rep["settings"]["modes"]:
        ph = cap.get("pilothouse", {}).get(mode, {})
        ll = cap.get("litellm", {}).get(mode, {})
        ratio = ph.get("one_core_rps", 0) / ll["one_core_rps"] if ll and ph else None
        rows.append(
            [
                mode,
                _f(ph.get("cpu_us_per_request"), 0),
                _f(ph.get("one_core_rps")),
                _f(ll.get("cpu_us_per_request"), 0),
                _f(ll.get("one_core_rps")),
                _f(ratio, 1) + "x" if ratio else "n/a",
            ]
        )
    header = [
        "mode",
        "pilothouse CPU µs/req",
        "pilothouse req/s per core",
        "LiteLLM CPU µs/req",
        "LiteLLM req/s per core",
        "ratio",
    ]
    return _table(header, rows)


def memory(rep: dict[str, Any]) -> str:
    rows = []
    for name in GATEWAYS:
        r = rep["rss"].get(name)
        if not r:
            continue
        rows.append(
            [
                name,
                _f(r.get("rss_kib_idle", 0) // 1024),
                _f(r.get("rss_kib", 0) // 1024),
                _f(r.get("requests_served")),
            ]
        )
    return _table(["gateway", "RSS idle MiB", "RSS after run MiB", "requests served"], rows)


def crosscheck(rep: dict[str, Any]) -> str:
    rows = [
        [name, _f(v.get("rps"), 0), _f(v.get("non_2xx"))]
        for name, v in rep.get("wrk_crosscheck", {}).items()
    ]
    return _table(["target", "wrk c=64 req/s", "non-2xx"], rows) if rows else "(not run)"


def code_under_test(env: dict[str, Any]) -> str:
    src = env.get("pilothouse_src", "")
    if src and not src.endswith("/main/src"):
        return f"from `{src}`"
    dirty = " (dirty tree)" if env.get("pilothouse_tree_dirty") else ""
    return f"{env.get('pilothouse_commit')}{dirty}"


def render(rep: dict[str, Any]) -> str:
    env = rep["environment"]
    parts = [
        f"Run {env['date_utc']} · pilothouse {code_under_test(env)} · "
        f"LiteLLM {env['versions']['litellm']} · `{env['command']}` · "
        f"{rep['wall_seconds'] / 60:.0f} min",
        "### Targets\n\n" + targets(rep),
        "### Latency by pattern (medians over rounds; added = paired difference to direct)\n\n"
        + latency(rep),
        "### Sustained throughput (closed loop, zero errors)\n\n" + throughput(rep),
        "### CPU cost per request (best closed-loop pattern; req/s per core = 1e6 / µs)\n\n"
        + capacity(rep),
        "### Memory\n\n" + memory(rep),
        "### Cross-check with wrk (C client, closed loop, 64 connections)\n\n" + crosscheck(rep),
    ]
    ua = rep.get("usage_accounting") or {}
    if ua:
        parts.append(
            f"Usage accounting: {_f(ua.get('db_rows'))} rows in the store + "
            f"{_f(ua.get('spooled_rows'))} spooled for {_f(ua.get('requests_served'))} "
            f"requests served — {'match' if ua.get('match') else '**mismatch**'}."
        )
    return "\n\n".join(parts) + "\n"


def compare(paths: list[Path]) -> str:
    """One line per run (e.g. config ablations of the same code), key numbers only."""
    rows = []
    for path in paths:
        rep = orjson.loads(path.read_bytes())
        s, added = rep["summary"], rep["added_latency_ms"].get("pilothouse", {})
        row = [path.stem]
        for mode in ("json", "stream"):
            closed = s.get(f"{mode}/closed_c16", {}).get("pilothouse", {})
            opened = added.get(f"{mode}/open_{rep['settings']['rate']:g}rps", {})
            row += [
                _f(closed.get("rps"), 0),
                _f(closed.get("gateway_cpu_us_per_request"), 0),
                _f(opened.get("p50"), 2),
                _f(opened.get("p99"), 1),
            ]
        rows.append(row)
    header = ["run"]
    for mode in ("json", "stream"):
        header += [
            f"{mode} c16 req/s",
            f"{mode} c16 CPU µs/req",
            f"{mode} 500/s added p50",
            f"{mode} 500/s added p99",
        ]
    return _table(header, rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("report", type=Path, nargs="+")
    p.add_argument("--compare", action="store_true", help="one summary line per report")
    args = p.parse_args()
    if args.compare:
        print(compare(args.report))
    else:
        print(render(orjson.loads(args.report[0].read_bytes())))


if __name__ == "__main__":
    main()
