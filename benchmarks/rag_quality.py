"""Retrieval quality on the pydoc BEIR set: dense vs keyword vs hybrid, with bootstrap CIs.

    python benchmarks/rag_quality.py [--data benchmarks/data/pydoc-beir] [--workdir DIR]

Runs the product's own command, ``pilothouse rag eval COLLECTION QRELS --corpus
corpus.jsonl --json``, with the issue's collection settings (recursive chunking,
300 tokens, overlap 40, the bundled all-MiniLM-L6-v2 through the in-process
gateway). Fusion settings are chosen on the ``dev`` qrels only; the ``test``
qrels are then scored once with the default fusion and once with the dev
choice, so nothing is tuned on the queries the result is reported on. The
index is kept in ``--workdir``, so re-runs skip unchanged documents.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).parent / "data" / "pydoc-beir"
EMBED = {
    "providers": {"minilm": {"type": "local_embeddings", "model": "all-minilm-l6-v2"}},
    "models": {"embed-local": {"targets": [{"provider": "minilm", "model": "all-minilm-l6-v2"}]}},
}
# (dense weight, keyword weight, rrf_k) tried on dev; the first is the shipped default
FUSIONS = [(1.0, 1.0, 60), (1.0, 0.5, 60), (0.5, 1.0, 60), (1.0, 1.0, 20), (1.0, 0.5, 20)]


def label(fusion: tuple[float, float, int]) -> str:
    return f"dense={fusion[0]} keyword={fusion[1]} rrf_k={fusion[2]}"


def write_config(workdir: Path, dense: float, keyword: float, rrf_k: int) -> Path:
    cfg = {
        **EMBED,
        "store": {"url": f"sqlite:///{workdir}/pilothouse.db"},
        "rag": {
            "store": {"url": f"sqlite:///{workdir}/pydoc-rag.db"},
            "collections": {
                "pydoc": {
                    "embedder": "embed-local",
                    "chunking": {"strategy": "recursive", "max_tokens": 300, "overlap": 40},
                    "search": {
                        "mode": "hybrid",
                        "k": 10,
                        "weights": {"dense": dense, "keyword": keyword},
                        "rrf_k": rrf_k,
                    },
                    "acl": {"default": "allow"},
                }
            },
        },
    }
    path = workdir / f"pilothouse-{dense}-{keyword}-{rrf_k}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def rag_eval(
    config: Path, data: Path, split: str, modes: str, corpus: bool
) -> tuple[dict[str, Any], float, list[str]]:
    cmd = [
        sys.executable,
        "-m",
        "pilothouse.cli.main",
        "rag",
        "eval",
        "pydoc",
        str(data / "qrels" / f"{split}.tsv"),
        "--modes",
        modes,
        "--json",
        "-c",
        str(config),
    ]
    if corpus:
        cmd[7:7] = ["--corpus", str(data / "corpus.jsonl")]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=config.parent, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"rag eval failed ({done.returncode}): {done.stderr[-2000:]}")
    shown = ["pilothouse", *cmd[3:]]
    return json.loads(done.stdout.strip().splitlines()[-1]), elapsed, shown


def chunks(config: Path) -> int:
    cmd = [sys.executable, "-m", "pilothouse.cli.main", "rag", "status", "pydoc", "--json"]
    done = subprocess.run(
        [*cmd, "-c", str(config)], capture_output=True, text=True, cwd=config.parent, check=True
    )
    return int(json.loads(done.stdout)["chunks"])


def brief(report: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for row in report["modes"]:
        out[row["mode"]] = {
            k: {m: round(v, 4) for m, v in row[k].items()}
            for k in ("ndcg_at_10", "recall_at_10", "mrr")
        } | {"queries": row["queries"]}
    return out


def quality(data: Path = DATA, workdir: Path | None = None) -> dict[str, Any]:
    workdir = workdir or Path("/tmp/pilothouse-rag-quality")
    workdir.mkdir(parents=True, exist_ok=True)
    default = write_config(workdir, *FUSIONS[0])
    test, ingest_s, command = rag_eval(default, data, "test", "dense,keyword,hybrid", True)
    out: dict[str, Any] = {
        "command": " ".join(command),
        "corpus_documents": sum(1 for _ in (data / "corpus.jsonl").open()),
        "chunks": chunks(default),
        "first_run_seconds_incl_ingest": round(ingest_s, 1),
        "test_default_fusion": brief(test),
    }
    dev: dict[str, Any] = {}
    for fusion in FUSIONS:
        report, _, _ = rag_eval(write_config(workdir, *fusion), data, "dev", "hybrid", False)
        dev[label(fusion)] = brief(report)["hybrid"]
    base, _, _ = rag_eval(default, data, "dev", "dense,keyword", False)
    dev |= brief(base)
    out["dev"] = dev
    best = max(FUSIONS, key=lambda f: dev[label(f)]["ndcg_at_10"]["mean"])
    out["dev_choice"] = label(best)
    if best != FUSIONS[0]:
        tuned, _, _ = rag_eval(write_config(workdir, *best), data, "test", "hybrid", False)
        out["test_dev_chosen_fusion"] = brief(tuned)["hybrid"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = quality(args.data, args.workdir)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
