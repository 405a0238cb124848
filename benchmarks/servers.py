"""Start, probe and stop the processes an overhead benchmark compares.

Each server runs in its own session (process group) so that stopping it also
stops any worker it forked, and optionally pinned to CPUs with ``taskset`` so
client, upstream and gateway do not steal each other's core mid-run.
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
ADMIN_KEY = "bench-admin-key-0123456789"
MOCK_API_KEY = "sk-mock-upstream"
LITELLM_MASTER_KEY = "sk-litellm-bench"


@dataclass
class Server:
    """A started server process and how to reach it."""

    name: str
    proc: subprocess.Popen[bytes]
    base_url: str
    key: str | None = None
    log_path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def chat_url(self) -> str:
        return self.base_url + "/v1/chat/completions"

    def rss_kib(self) -> int:
        """Resident memory of the process and all its descendants, in KiB."""
        return sum(_rss_kib(pid) for pid in _tree(self.proc.pid))

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM the whole group (graceful drain), SIGKILL if it hangs."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


def _tree(pid: int) -> list[int]:
    """``pid`` and every descendant, found through /proc/*/task/*/children."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def _rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# Scheduling priority for every process the benchmark starts (set once by the
# orchestrator). On a machine shared with other work, a negative nice value
# lets the benchmark's processes win the CPU when they want it, so what is
# measured is the gateway and not someone else's test suite.
NICE = 0


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens there, else any free loopback port.

    Two benchmark runs on one machine must never talk to each other's
    servers (a taken port would make the readiness probe succeed against a
    stranger's mock or gateway).
    """
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free loopback port")


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    """Prefix ``cmd`` with CPU pinning (taskset) and priority (nice) if asked."""
    prefix = ["nice", "-n", str(NICE)] if NICE else []
    return prefix + (["taskset", "-c", cpus] if cpus else []) + cmd


def http_json(
    method: str, url: str, body: Any = None, key: str | None = None, timeout: float = 5.0
) -> tuple[int, Any, dict[str, str]]:
    """A tiny stdlib HTTP call for set-up and checks (never on the measured path)."""
    data = orjson.dumps(body) if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status, headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw, status, headers = exc.read(), exc.code, dict(exc.headers)
    try:
        return status, orjson.loads(raw), headers
    except orjson.JSONDecodeError:
        return status, raw.decode(errors="replace"), headers


def wait_ready(server: Server, path: str, timeout: float) -> None:
    """Poll ``path`` until it answers 200; fail with the log tail otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            break
        with contextlib.suppress(OSError):
            if http_json("GET", server.base_url + path, timeout=1.0)[0] == 200:
                return
        time.sleep(0.2)
    tail = server.log_path.read_text()[-2000:] if server.log_path else ""
    server.stop()
    raise RuntimeError(f"{server.name} did not become ready on {path}:\n{tail}")


def spawn(
    name: str, cmd: list[str], cpus: str | None, workdir: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``cmd`` in its own session with output to ``workdir/name.log``."""
    log_path = workdir / f"{name}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        pinned(cmd, cpus),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=workdir,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    log.close()
    return proc, log_path


def start_mock(port: int, cpus: str | None, workdir: Path) -> Server:
    cmd = [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(port)]
    proc, log = spawn("mock", cmd, cpus, workdir)
    server = Server("direct", proc, f"http://127.0.0.1:{port}", log_path=log)
    wait_ready(server, "/health", 10)
    return server


def start_bare_proxy(port: int, upstream_port: int, cpus: str | None, workdir: Path) -> Server:
    """The reference proxy (benchmarks/bare_proxy.py): forwarding only, no accounting."""
    cmd = [
        sys.executable,
        str(HERE / "bare_proxy.py"),
        "--port",
        str(port),
        "--upstream",
        f"http://127.0.0.1:{upstream_port}",
    ]
    proc, log = spawn("bare", cmd, cpus, workdir)
    server = Server("bare", proc, f"http://127.0.0.1:{port}", log_path=log)
    wait_ready(server, "/health", 20)
    return server


def mock_stats(mock: Server) -> dict[str, int]:
    """The mock's per-response-kind counters (to prove requests reached it)."""
    return http_json("GET", mock.base_url + "/_stats")[1]  # type: ignore[no-any-return]


def loop_lag_buckets(server: Server) -> dict[float, float]:
    """Cumulative ``pilothouse_event_loop_lag_seconds`` buckets (``le`` -> count)."""
    req = urllib.request.Request(
        server.base_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, OSError):
        return {}
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("pilothouse_event_loop_lag_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = out.get(float(le), 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def lag_p99_ms(before: dict[float, float], after: dict[float, float]) -> float | None:
    """p99 of the loop-lag samples taken between two scrapes (a bucket's upper bound)."""
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    if not delta or delta[-1][1] <= 0:
        return None
    total = delta[-1][1]
    for le, count in delta:
        if count >= 0.99 * total:
            return le * 1000
    return None


def upstream_total(mock: Server, settle_s: float = 0.3, timeout: float = 10.0) -> int:
    """Requests the mock has answered, once the count stops moving.

    A client that stops at a deadline (or wrk at the end of its duration)
    leaves requests in flight; a gateway still forwards them after the client
    is gone, so reading the counter at once would miss them.
    """
    deadline = time.monotonic() + timeout
    total = sum(mock_stats(mock).values())
    while time.monotonic() < deadline:
        time.sleep(settle_s)
        again = sum(mock_stats(mock).values())
        if again == total:
            break
        total = again
    return total


def pilothouse_config(
    port: int, upstream_port: int, workdir: Path, log_level: str, extra: str = "", workers: int = 1
) -> Path:
    """The gateway config: one alias on the mock, a price so cost is computed.

    ``extra`` is appended verbatim (top-level YAML sections), for ablations
    such as ``telemetry: {traces: false}``.
    """
    text = f"""\
server: {{host: 127.0.0.1, port: {port}, admin_key: "env:PILOTHOUSE_ADMIN_KEY",
          max_in_flight: 4096, log_level: {log_level}, workers: {workers}}}
store: {{url: "sqlite:///{workdir}/ph-bench.db", spool_path: "{workdir}/ph-spool.jsonl"}}
providers:
  mock: {{type: openai, base_url: "http://127.0.0.1:{upstream_port}/v1", api_key: "env:MOCK_KEY"}}
models:
  bench: {{targets: [{{provider: mock, model: gpt-4o-mini}}]}}
prices:
  gpt-4o-mini: {{input: 0.15, output: 0.60}}
"""
    path = workdir / "pilothouse.yaml"
    path.write_text(text + (extra.strip() + "\n" if extra.strip() else ""))
    return path


def start_pilothouse(
    binary: str,
    port: int,
    upstream_port: int,
    cpus: str | None,
    workdir: Path,
    log_level: str,
    extra: str = "",
    src: str | None = None,
    workers: int = 1,
) -> Server:
    """Start ``pilothouse serve`` and mint a virtual key through the admin API."""
    config = pilothouse_config(port, upstream_port, workdir, log_level, extra, workers)
    cmd = [binary, "serve", "--config", str(config), "--port", str(port)]
    env = {"PILOTHOUSE_ADMIN_KEY": ADMIN_KEY, "MOCK_KEY": MOCK_API_KEY}
    if src:  # PYTHONPATH wins over the editable install's path entry
        env["PYTHONPATH"] = str(Path(src).resolve())
    proc, log = spawn("pilothouse", cmd, cpus, workdir, env)
    server = Server("pilothouse", proc, f"http://127.0.0.1:{port}", log_path=log)
    wait_ready(server, "/healthz", 60)
    status, body, _ = http_json(
        "POST", server.base_url + "/admin/keys", {"name": "bench"}, key=ADMIN_KEY
    )
    if status != 201 or not isinstance(body, dict) or "key" not in body:
        server.stop()
        raise RuntimeError(f"POST /admin/keys answered {status}: {body!r}")
    server.key = body["key"]
    server.info["config"] = config.read_text()
    server.info["db"] = str(workdir / "ph-bench.db")
    server.info["spool"] = str(workdir / "ph-spool.jsonl")
    return server


def litellm_config(upstream_port: int, workdir: Path) -> Path:
    """LiteLLM proxy config: the same alias on the same mock, no database."""
    text = f"""\
model_list:
  - model_name: bench
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{upstream_port}/v1
      api_key: {MOCK_API_KEY}
litellm_settings:
  telemetry: false
general_settings:
  master_key: {LITELLM_MASTER_KEY}
"""
    path = workdir / "litellm.yaml"
    path.write_text(text)
    return path


LITELLM_OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price map
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
    "DISABLE_SCHEMA_UPDATE": "true",
    "NO_DOCS": "True",
}


def start_litellm(
    venv: Path, port: int, upstream_port: int, cpus: str | None, workdir: Path
) -> Server:
    """Start LiteLLM proxy with one uvicorn worker, fully offline."""
    config = litellm_config(upstream_port, workdir)
    cmd = [
        str(venv / "bin" / "litellm"),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    proc, log = spawn("litellm", cmd, cpus, workdir, LITELLM_OFFLINE_ENV)
    server = Server("litellm", proc, f"http://127.0.0.1:{port}", LITELLM_MASTER_KEY, log)
    wait_ready(server, "/health/liveliness", 120)
    server.info["config"] = config.read_text()
    return server


def litellm_version(venv: Path) -> str | None:
    py = venv / "bin" / "python"
    if not py.exists():
        return None
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or None


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of ``pid`` and its live descendants."""
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def system_cpu() -> dict[str, float]:
    """Machine-wide busy and steal CPU seconds (all cores) from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return {"busy": (user + nice + system + irq + softirq) / CLK_TCK, "steal": steal / CLK_TCK}


class CpuMeter:
    """CPU seconds spent by the gateway, the mock, the client and everyone else.

    The machine is shared (other people's test suites run on it), so each
    phase records how much CPU went to processes that are not part of the
    benchmark; a phase with a large ``foreign_share`` deserves suspicion.
    The gateway's CPU per request is the least noisy overhead number there is.
    """

    def __init__(self, mock: Server, server: Server) -> None:
        self.mock, self.server = mock, server
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        now = {
            "wall": time.perf_counter(),
            "mock": cpu_seconds(self.mock.proc.pid),
            "client": kids.ru_utime + kids.ru_stime,
        } | system_cpu()
        now["gateway"] = cpu_seconds(self.server.proc.pid) if self.server is not self.mock else 0.0
        return now

    def stop(self, requests: int) -> dict[str, float]:
        d = {k: v - self.start[k] for k, v in self._read().items()}
        ours = d["gateway"] + d["mock"] + d["client"]
        ncpu = os.cpu_count() or 1
        return {
            "gateway_s": round(d["gateway"], 3),
            "gateway_us_per_request": round(1e6 * d["gateway"] / requests, 1) if requests else 0,
            "mock_s": round(d["mock"], 3),
            "client_s": round(d["client"], 3),
            "foreign_share": round(max(0.0, d["busy"] - ours) / (d["wall"] * ncpu), 3),
            "steal_s": round(d["steal"], 3),
        }


def foreign_share(ours: list[Server], window: float = 1.0) -> float:
    """Share of all CPUs used by processes outside the benchmark over ``window`` s."""

    def sample() -> tuple[float, float]:
        return system_cpu()["busy"], sum(cpu_seconds(s.proc.pid) for s in ours)

    busy0, ours0 = sample()
    time.sleep(window)
    busy1, ours1 = sample()
    return max(0.0, (busy1 - busy0) - (ours1 - ours0)) / (window * (os.cpu_count() or 1))


def wait_for_quiet(ours: list[Server], threshold: float, max_wait: float) -> dict[str, float]:
    """Hold the next phase while other work on this shared machine is busy.

    Bounded: after ``max_wait`` seconds the phase runs anyway and the
    measured share is recorded with it.
    """
    started = time.monotonic()
    share = foreign_share(ours)
    while share > threshold and time.monotonic() - started < max_wait:
        share = foreign_share(ours)
    return {"waited_s": round(time.monotonic() - started, 1), "share_before": round(share, 3)}
