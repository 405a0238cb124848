"""Ingestion fan-out: one vs two `pilothouse worker` processes draining the same queued corpus.

    python benchmarks/rag_workers.py [--files 120] [--redis redis://127.0.0.1:6379/0]

For each worker count, on a fresh index and a fresh Redis prefix: write
``--files`` pydoc sections as Markdown files, queue them with
``pilothouse rag ingest pydoc DIR --queue``, start N ``pilothouse worker
--burst`` processes at once and time until the last one exits (the queue is
empty). Reports wall time, chunks/s and the speed-up; checks that the index
holds one document per file.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).parent / "data" / "pydoc-beir"
PILOTHOUSE = [sys.executable, "-m", "pilothouse.cli.main"]


def config(root: Path, redis: str) -> Path:
    cfg = {
        "providers": {"minilm": {"type": "local_embeddings", "model": "all-minilm-l6-v2"}},
        "models": {
            "embed-local": {"targets": [{"provider": "minilm", "model": "all-minilm-l6-v2"}]}
        },
        "store": {"url": f"sqlite:///{root}/pilothouse.db"},
        "redis": {"url": redis, "prefix": f"bench-rag-{secrets.token_hex(4)}:"},
        "rag": {
            "store": {"url": f"sqlite:///{root}/rag.db"},
            "collections": {
                "pydoc": {
                    "embedder": "embed-local",
                    "chunking": {"strategy": "recursive", "max_tokens": 300, "overlap": 40},
                }
            },
        },
    }
    path = root / "pilothouse.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(args: list[str], cfg: Path) -> str:
    done = subprocess.run(
        [*PILOTHOUSE, *args, "-c", str(cfg)],
        capture_output=True,
        text=True,
        cwd=cfg.parent,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stdout[-1000:]} {done.stderr[-1000:]}")
    return done.stdout


def run(workers: int, files: int, redis: str) -> dict[str, Any]:
    rows = [json.loads(line) for line in (DATA / "corpus.jsonl").read_text().splitlines()]
    rows = rows[:: max(1, len(rows) // files)][:files]
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        root = Path(tmp)
        cfg = config(root, redis)
        corpus = root / "corpus"
        corpus.mkdir()
        for i, row in enumerate(rows):
            (corpus / f"{i:04d}.md").write_text(f"# {row['title']}\n\n{row['text']}\n")
        cli(["db", "upgrade"], cfg)
        cli(["rag", "ingest", "pydoc", str(corpus), "--acl", "staff", "--queue"], cfg)
        env = {**os.environ}
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [*PILOTHOUSE, "worker", "--burst", "-c", str(cfg)],
                cwd=root,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(workers)
        ]
        errors = [p.communicate(timeout=3600)[1] for p in procs]
        elapsed = time.perf_counter() - started
        if any(p.returncode for p in procs):
            raise SystemExit(f"a worker failed: {errors}")
        status = json.loads(cli(["rag", "status", "pydoc", "--json"], cfg))
        if status["documents"] != len(rows):
            raise SystemExit(f"{status['documents']} documents indexed from {len(rows)} files")
    return {
        "workers": workers,
        "files": len(rows),
        "documents": status["documents"],
        "chunks": status["chunks"],
        "seconds": round(elapsed, 1),
        "chunks_per_s": round(status["chunks"] / elapsed, 2),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def speedup(files: int, redis: str = "redis://127.0.0.1:6379/0") -> dict[str, Any]:
    one = run(1, files, redis)
    two = run(2, files, redis)
    return {"one": one, "two": two, "speedup": round(one["seconds"] / two["seconds"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    print(json.dumps(speedup(args.files, args.redis), indent=2))


if __name__ == "__main__":
    main()
