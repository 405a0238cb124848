"""Gateway overhead: direct vs pilothouse vs LiteLLM proxy, side by side in one run.

All three are driven against the same local mock upstream with the same load
pattern, interleaved pattern by pattern so slow drift of the machine hits all
of them alike. What is reported is the *difference* to the direct run (added
latency at p50/p99) and the ratio of sustained throughputs, because on a
shared 2-core machine absolute numbers say more about the machine than about
the gateway.

Patterns, each for non-streaming and streaming chat completions:
sequential (closed loop, 1 worker), closed loop at 16 and 64 workers, and an
open loop at a fixed rate (default 500 req/s) whose latency is counted from
the scheduled send time. Then each gateway is soaked until it has served
``--rss-requests`` requests and its resident memory is read.

Prints one JSON object on stdout (progress goes to stderr); ``--out NAME``
also writes it to benchmarks/results/NAME.

    python benchmarks/overhead.py --quick
    python benchmarks/overhead.py --out overhead-full.json
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import servers
from report import environment, summarise
from servers import Server

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LOADGEN = HERE / "loadgen.py"
LAST_RAW = Path(tempfile.gettempdir()) / "pilothouse-overhead-last-raw.json"

PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        "rounds": 3,
        "seq_requests": 3000,
        "requests": 20000,
        "rate_seconds": 30,
        "warmup": 300,
        "phase_seconds": 60,
        "rss_requests": 100_000,
        "soak_seconds": 180,
    },
    "quick": {
        "rounds": 1,
        "seq_requests": 500,
        "requests": 2000,
        "rate_seconds": 10,
        "warmup": 100,
        "phase_seconds": 25,
        "rss_requests": 20_000,
        "soak_seconds": 60,
    },
}


def log(msg: str) -> None:
    sys.stderr.write(f"[overhead {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


@dataclass(frozen=True)
class Pattern:
    """One load shape; ``rate`` > 0 means open loop."""

    name: str
    concurrency: int
    rate: float
    requests: int


def patterns(args: argparse.Namespace) -> list[Pattern]:
    out = [Pattern("sequential", 1, 0.0, args.seq_requests)]
    out += [Pattern(f"closed_c{c}", c, 0.0, args.requests) for c in args.concurrency]
    if args.rate:
        out.append(
            Pattern(f"open_{args.rate:g}rps", 0, args.rate, int(args.rate * args.rate_seconds))
        )
    return out


def loadgen_cmd(args: argparse.Namespace, server: Server, stream: bool, **kw: Any) -> list[str]:
    """The command line of one client run (a separate, pinned process)."""
    cmd = [sys.executable, str(LOADGEN), "--url", server.chat_url, "--model", "bench"]
    if server.key:
        cmd += ["--key", server.key]
    if stream:
        cmd.append("--stream")
    for name, value in kw.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    return servers.pinned(cmd, args.client_cpus)


def run_client(cmd: list[str], max_seconds: float) -> dict[str, Any]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=max_seconds + 60, check=False)
    if out.returncode != 0:
        return {"failed": True, "stderr": out.stderr[-1500:]}
    return orjson.loads(out.stdout)  # type: ignore[no-any-return]


def run_phase(
    args: argparse.Namespace,
    mock: Server,
    server: Server,
    pattern: Pattern,
    stream: bool,
    everyone: list[Server],
) -> dict[str, Any]:
    """Run one pattern against one target; also count what reached the upstream.

    The phase starts only once other work on the machine has calmed down
    (bounded wait), and its CPU split is recorded either way.
    """
    kw: dict[str, Any] = {
        "requests": pattern.requests,
        "warmup": args.warmup,
        "max_seconds": args.phase_seconds,
    }
    if pattern.rate:
        kw |= {"rate": pattern.rate, "connections": args.open_connections}
    else:
        kw["concurrency"] = pattern.concurrency
    quiet = servers.wait_for_quiet(everyone, args.quiet_threshold, args.quiet_wait)
    before = servers.upstream_total(mock)
    meter = servers.CpuMeter(mock, server)
    lag_before = servers.loop_lag_buckets(server) if server.name == "pilothouse" else {}
    result = run_client(loadgen_cmd(args, server, stream, **kw), args.phase_seconds)
    upstream = servers.upstream_total(mock) - before
    if server.name == "pilothouse":  # its request loop's lag during this phase
        result["loop_lag_p99_ms"] = servers.lag_p99_ms(lag_before, servers.loop_lag_buckets(server))
    result["cpu"] = meter.stop(upstream) | {"quiet_gate": quiet}
    result["upstream_requests"] = upstream
    result["client_requests"] = min(args.warmup, pattern.requests) + result.get("completed", 0)
    return result


def soak(args: argparse.Namespace, mock: Server, server: Server, served: int) -> dict[str, Any]:
    """Top the gateway up to ``--rss-requests`` served, then read its RSS."""
    rss_before = server.rss_kib()
    remaining = max(0, args.rss_requests - served)
    result: dict[str, Any] = {"rss_kib_before_soak": rss_before}
    if remaining:
        log(f"soak {server.name}: {remaining} more requests (cap {args.soak_seconds}s)")
        before = servers.upstream_total(mock)
        cmd = loadgen_cmd(
            args,
            server,
            False,
            requests=remaining,
            concurrency=16,
            warmup=0,
            max_seconds=args.soak_seconds,
        )
        run = run_client(cmd, args.soak_seconds)
        served += servers.upstream_total(mock) - before
        result["soak"] = {k: run.get(k) for k in ("completed", "errors", "rps", "elapsed_s")}
    result["requests_served"] = served
    result["rss_kib"] = server.rss_kib()
    return result


def wrk_crosscheck(
    args: argparse.Namespace, mock: Server, server: Server, workdir: Path
) -> dict[str, Any]:
    """Closed-loop c=64 throughput measured by wrk (C), to bound our client's bias."""
    script = workdir / f"wrk-{server.name}.lua"
    body = orjson.dumps(
        {
            "model": "bench",
            "messages": [{"role": "user", "content": "Say hello in five words."}],
            "max_tokens": 16,
        }
    ).decode()
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = [[{body}]]",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    if server.key:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {server.key}"')
    script.write_text("\n".join(lines) + "\n")
    cmd = servers.pinned(
        ["wrk", "-t1", "-c64", f"-d{args.wrk_seconds}s", "-s", str(script), server.chat_url],
        args.client_cpus,
    )
    before = servers.upstream_total(mock)
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=args.wrk_seconds + 60, check=False
    ).stdout
    parsed: dict[str, Any] = {"non_2xx": 0}
    parsed["upstream_requests"] = servers.upstream_total(mock) - before
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            parsed["rps"] = float(line.split()[1])
        elif "Non-2xx" in line:
            parsed["non_2xx"] = int(line.split()[-1])
        elif "requests in" in line:
            parsed["requests"] = int(line.split()[0])
    return parsed


def usage_accounting(server: Server, served: int | None, exit_code: int | None) -> dict[str, Any]:
    """Did every request served leave a usage record (in the store, or spooled)?

    Read after graceful shutdown, which drains the ledger queue. A mismatch
    keeps the tail of the gateway log in the report.
    """
    rows = None
    db = server.info["db"]
    with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(db)) as conn:
        rows = int(conn.execute("SELECT count(*) FROM usage_records").fetchone()[0])
    spool = Path(server.info["spool"])
    spooled = len(spool.read_bytes().splitlines()) if spool.exists() else 0
    out = {
        "db_rows": rows,
        "spooled_rows": spooled,
        "requests_served": served,
        "exit_code": exit_code,
        "match": (rows or 0) + spooled == served,
    }
    if not out["match"] and server.log_path:
        out["log_tail"] = server.log_path.read_text(errors="replace")[-1500:]
    return out


def start_targets(
    args: argparse.Namespace, workdir: Path
) -> tuple[Server, dict[str, Server], dict[str, str]]:
    """Mock first, then each gateway; a gateway that cannot start is reported, not fatal."""
    for name in ("mock_port", "pilothouse_port", "litellm_port", "bare_port"):
        setattr(args, name, servers.free_port(getattr(args, name)))
    mock = servers.start_mock(args.mock_port, args.client_cpus, workdir)
    targets: dict[str, Server] = {"direct": mock}
    unavailable: dict[str, str] = {}
    starters = {
        "pilothouse": lambda: servers.start_pilothouse(
            args.pilothouse_bin,
            args.pilothouse_port,
            args.mock_port,
            args.gateway_cpus,
            workdir,
            args.pilothouse_log_level,
            args.pilothouse_extra_yaml,
            args.pilothouse_src,
            args.pilothouse_workers,
        ),
        "bare": lambda: servers.start_bare_proxy(
            args.bare_port, args.mock_port, args.gateway_cpus, workdir
        ),
        "litellm": lambda: servers.start_litellm(
            Path(args.bench_venv), args.litellm_port, args.mock_port, args.gateway_cpus, workdir
        ),
    }
    for name in args.targets:
        if name in starters:
            try:
                targets[name] = starters[name]()
                log(f"{name} up (pid {targets[name].proc.pid})")
            except (RuntimeError, OSError) as exc:
                unavailable[name] = str(exc)[-1500:]
                log(f"{name} unavailable: {str(exc)[:300]}")
    return mock, targets, unavailable


def rss_served(runs: dict[str, dict[str, list[dict[str, Any]]]], name: str) -> int:
    """Requests that reached the upstream through ``name`` so far (warm-ups included)."""
    return sum(r["upstream_requests"] for by in runs.values() for r in by.get(name, []))


def run_matrix(
    args: argparse.Namespace,
    mock: Server,
    targets: dict[str, Server],
    rss: dict[str, dict[str, Any]],
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Rounds x modes x patterns x targets, targets interleaved inside each pattern.

    Later rounds skip LiteLLM (unless ``--litellm-every-round``): it is ~30x
    slower, so repeating it costs most of the run and sharpens nothing that
    matters. Repeating direct/pilothouse lets the report use the median of
    paired differences, which a burst of foreign load cannot drag far.
    After each round every gateway's RSS is sampled, to show growth over time.
    """
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for rnd in range(args.rounds):
        for mode in args.modes:
            for pattern in patterns(args):
                key = f"{mode}/{pattern.name}"
                for name, server in targets.items():
                    if rnd and name == "litellm" and not args.litellm_every_round:
                        continue
                    log(f"round {rnd + 1}/{args.rounds} {key} -> {name} ({pattern.requests})")
                    res = run_phase(
                        args, mock, server, pattern, mode == "stream", list(targets.values())
                    )
                    res["round"] = rnd
                    runs.setdefault(key, {}).setdefault(name, []).append(res)
                    log_phase(res)
        for name, server in targets.items():
            if name != "direct":
                sample = {"requests": rss_served(runs, name), "rss_kib": server.rss_kib()}
                rss[name].setdefault("per_round", []).append(sample)
    return runs


def log_phase(res: dict[str, Any]) -> None:
    lat, cpu = res.get("latency_ms", {}), res.get("cpu", {})
    log(
        f"   rps={res.get('rps')} p50={lat.get('p50')} p99={lat.get('p99')} "
        f"errors={res.get('errors')} gateway_cpu_us/req={cpu.get('gateway_us_per_request')} "
        f"foreign={cpu.get('foreign_share')}"
    )


def benchmark(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    mock, targets, unavailable = start_targets(args, workdir)
    rss: dict[str, dict[str, Any]] = {}
    try:
        for name, server in targets.items():
            rss[name] = {"rss_kib_idle": server.rss_kib()}
        runs = run_matrix(args, mock, targets, rss)
        served = {name: rss_served(runs, name) for name in targets}
        wrk = {}
        if args.wrk:
            wrk = {name: wrk_crosscheck(args, mock, s, workdir) for name, s in targets.items()}
            for name, res in wrk.items():
                served[name] += res["upstream_requests"]
        for name, server in targets.items():
            if name == "direct":
                continue
            if args.rss_requests:
                rss[name] |= soak(args, mock, server, served[name])
            else:
                rss[name] |= {"requests_served": served[name], "rss_kib": server.rss_kib()}
    finally:
        codes = {name: srv.stop() for name, srv in targets.items() if name != "direct"}
        mock.stop()
    accounting = {}
    if "pilothouse" in targets:
        ph = targets["pilothouse"]
        served_ph = rss.get("pilothouse", {}).get("requests_served")
        accounting = usage_accounting(ph, served_ph, codes.get("pilothouse"))
    return {
        "runs": runs,
        "rss": rss,
        "wrk_crosscheck": wrk,
        "unavailable": unavailable,
        "usage_accounting": accounting,
        "exit_codes": codes,
        "configs": {n: s.info.get("config") for n, s in targets.items() if s.info},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few-minute run with small counts")
    p.add_argument("--seq-requests", type=int, help="sequential requests per phase")
    p.add_argument("--requests", type=int, help="requests per closed-loop phase (c>1)")
    p.add_argument("--rounds", type=int, help="repeat the matrix (median of rounds)")
    p.add_argument("--litellm-every-round", action="store_true")
    p.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    p.add_argument("--rate", type=float, default=500.0, help="open-loop rate; 0 disables")
    p.add_argument("--rate-seconds", type=float, help="open-loop phase length")
    p.add_argument("--open-connections", type=int, default=64)
    p.add_argument("--warmup", type=int, help="unrecorded requests before each phase")
    p.add_argument("--phase-seconds", type=float, help="hard cap per phase")
    p.add_argument("--rss-requests", type=int, help="read gateway RSS after this many")
    p.add_argument("--soak-seconds", type=float, help="cap for the RSS soak per gateway")
    p.add_argument("--modes", nargs="+", default=["json", "stream"], choices=["json", "stream"])
    p.add_argument("--targets", nargs="+", default=["direct", "bare", "pilothouse", "litellm"])
    p.add_argument(
        "--quiet-threshold",
        type=float,
        default=0.10,
        help="before each phase, wait until other processes use at most this CPU share",
    )
    p.add_argument("--quiet-wait", type=float, default=60.0, help="max wait for quiet (s)")
    p.add_argument(
        "--nice",
        type=int,
        default=-10 if os.geteuid() == 0 else 0,
        help="nice value for all benchmark processes (negative needs root)",
    )
    p.add_argument("--no-pin", action="store_true", help="do not taskset the processes")
    p.add_argument("--client-cpus", default="0", help="CPUs for load generator and mock")
    p.add_argument("--gateway-cpus", default="1", help="CPUs for the gateway under test")
    p.add_argument("--mock-port", type=int, default=9100)
    p.add_argument("--pilothouse-port", type=int, default=4100)
    p.add_argument("--litellm-port", type=int, default=4200)
    p.add_argument("--bare-port", type=int, default=4300)
    p.add_argument("--pilothouse-bin", default=str(HERE.parent / ".venv" / "bin" / "pilothouse"))
    p.add_argument("--pilothouse-log-level", default="warning")
    p.add_argument(
        "--pilothouse-src",
        help="run the gateway from this src/ directory (PYTHONPATH), e.g. an exported "
        "snapshot of one commit, so edits landing in the work tree mid-run cannot mix in",
    )
    p.add_argument(
        "--pilothouse-extra-yaml",
        default="",
        help="top-level YAML appended to the generated config, e.g. 'telemetry: {traces: false}'",
    )
    p.add_argument(
        "--pilothouse-workers",
        type=int,
        default=1,
        help="server.workers (> 1 needs redis: pass it with --pilothouse-extra-yaml)",
    )
    p.add_argument("--bench-venv", default="/work/bench-venv")
    p.add_argument("--wrk", action="store_true", help="also measure c=64 throughput with wrk")
    p.add_argument("--wrk-seconds", type=int, default=10)
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, db)")
    p.add_argument("--out", help="file name under benchmarks/results/")
    p.add_argument(
        "--report-only",
        metavar="RAW",
        help=f"re-summarise a saved raw run (the last one is kept in {LAST_RAW}); "
        "pass the same count/rate flags as that run",
    )
    args = p.parse_args(argv)
    for name, value in PROFILES["quick" if args.quick else "full"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    servers.NICE = args.nice
    if args.no_pin:
        args.client_cpus = args.gateway_cpus = None
    if "direct" not in args.targets:
        args.targets.insert(0, "direct")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM -> SystemExit, so the finally blocks stop every server we started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    if args.report_only:
        raw = orjson.loads(Path(args.report_only).read_bytes())
    else:
        env = environment(args, sys.argv)  # before start: the code under test is loaded now
        workdir = Path(tempfile.mkdtemp(prefix="ph-overhead-"))
        try:
            raw = benchmark(args, workdir)
        finally:
            if args.keep:
                log(f"kept configs, logs and the gateway database in {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        raw["environment"] = env
        raw["wall_seconds"] = round(time.time() - started, 1)
        LAST_RAW.write_bytes(orjson.dumps(raw))
    report = summarise(raw, args) | {
        "environment": raw["environment"],
        "wall_seconds": raw["wall_seconds"],
    }
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    if args.out:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / Path(args.out).name).write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
