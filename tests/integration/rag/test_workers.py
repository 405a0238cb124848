"""Two `pilothouse worker` processes drain one queued corpus without duplicates."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pilothouse.cli.main import app

pytestmark = pytest.mark.integration


async def job_results(cfg: dict[str, object]) -> list[str]:
    from arq import create_pool

    from pilothouse.config.load import parse_settings
    from pilothouse.rag.jobs import queue_name, redis_settings

    settings = parse_settings(cfg)
    pool = await create_pool(redis_settings(settings), default_queue_name=queue_name(settings))
    try:
        done = [r for r in await pool.all_job_results() if r.queue_name == queue_name(settings)]
        return [str(r.result) for r in done]
    finally:
        await pool.aclose()


def test_two_workers_ingest_one_corpus_without_duplicates(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    cfg = yaml.safe_load((Path(__file__).parents[3] / "examples/rag/pilothouse.yaml").read_text())
    cfg["rag"]["store"]["url"] = f"sqlite:///{tmp_path}/rag.db"
    cfg["store"] = {"url": f"sqlite:///{tmp_path}/pilothouse.db"}
    cfg["redis"] = {"url": redis_url, "prefix": redis_prefix}
    config = tmp_path / "pilothouse.yaml"
    config.write_text(yaml.safe_dump(cfg))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(8):
        (corpus / f"page-{i}.md").write_text(f"# Page {i}\n\nTopic number {i} for the workers.\n")
    runner = CliRunner()
    args = [
        "rag",
        "ingest",
        "handbook",
        str(corpus),
        "--acl",
        "staff",
        "--queue",
        "-c",
        str(config),
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0 and "queued 8 of 8" in first.output, first.output
    again = runner.invoke(app, args)
    assert "queued 0 of 8" in again.output, "the same file versions are queued once"

    migrated = runner.invoke(app, ["db", "upgrade", "-c", str(config)])
    assert migrated.exit_code == 0, migrated.output
    cmd = [sys.executable, "-m", "pilothouse.cli.main", "worker", "--burst", "-c", str(config)]
    workers = [
        subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    logs = [w.communicate(timeout=300)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), logs
    results = asyncio.run(job_results(cfg))
    assert sorted(results) == ["created"] * 8, (results, logs)  # each job ran exactly once

    status = runner.invoke(app, ["rag", "status", "handbook", "--json", "-c", str(config)])
    info = json.loads(status.output)
    assert info["documents"] == 8 and info["chunks"] == 8 and info["orphans"] == 0
