"""`pilothouse routing train`: a logreg router on MiniLM embeddings from two eval runs,
its held-out guarantee, and the trained router deciding live requests."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from pilothouse.evals.model import Case, RunInfo, Sample, Verdict
from pilothouse.evals.store import EvalStore
from pilothouse.store.db import create_engine, migrate
from tests.support.gateway import base_config, running_gateway, write_config

pytestmark = pytest.mark.integration
HARD = [
    "Prove that the square root of {n} is irrational, step by step.",
    "Derive the closed form of the recurrence T(n) = 2T(n/2) + {n}n and justify each step.",
    "Analyze the time complexity of merging {n} sorted lists with a heap and prove it tight.",
    "Explain why Dijkstra's algorithm fails with negative edges, with a {n}-node counterexample.",
]
EASY = [
    "Say hello to {name}.",
    "What is the capital of {country}?",
    "Translate 'thank you' into {lang}.",
    "Reply with the word {name} only.",
]
NAMES = ["Ada", "Linus", "Grace", "Alan", "Barbara", "Ken", "Dennis", "Margaret"]
PLACES = ["France", "Peru", "Japan", "Kenya", "Chile", "Norway", "Egypt", "Canada"]
LANGS = ["French", "Spanish", "German", "Italian", "Dutch", "Polish", "Greek", "Czech"]


def cases() -> list[tuple[str, bool]]:
    out = []
    for i in range(8):
        for template in HARD:
            out.append((template.format(n=i + 3), True))
        for template in EASY:
            out.append((template.format(name=NAMES[i], country=PLACES[i], lang=LANGS[i]), False))
    return out


async def seed_runs(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
        store = EvalStore(engine)
        data = cases()
        for run_id, alias in (("run_cheap", "cheap"), ("run_strong", "strong")):
            info = RunInfo(
                id=run_id,
                suite="mixed",
                scorers=["exact"],
                target={"model": alias},
                status="completed",
                started_at=datetime.now(UTC),
                case_order=[f"c{i}" for i in range(len(data))],
            )
            await store.create_run(info)
            items = []
            for i, (text, hard) in enumerate(data):
                passed = not (hard and alias == "cheap")  # the cheap model fails the hard ones
                sample = Sample(case_id=f"c{i}", verdicts=[Verdict(scorer="exact", passed=passed)])
                items.append((Case(id=f"c{i}", input=text), sample))
            await store.write(run_id, items, [])
    finally:
        await engine.dispose()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pilothouse.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_chooses_a_threshold_with_a_guarantee_and_routes_by_it(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/ph.db"
    asyncio.run(seed_runs(store))
    config = base_config(store, tmp_path)
    path = write_config(tmp_path / "c.yaml", config)
    model_path = tmp_path / "router.json"
    out = cli(
        "routing", "train", "run_cheap", "run_strong", "--out", str(model_path),
        "--target", "0.9", "--json", "--config", str(path),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["held_out_cases"] == 19 and report["train_cases"] == 45
    low, high = report["quality_share_ci95"]
    assert low >= 0.9, "the threshold keeps the lower bound at the target"
    assert low <= report["quality_share"] <= high
    assert report["cheap_share"] > 0.3, "easy cases are routed cheap"
    cheap_lo, cheap_hi = report["cheap_share_ci95"]
    assert cheap_lo <= report["cheap_share"] <= cheap_hi

    models = {
        "chat": {
            "routing": {
                "strategy": "rules",
                "difficulty": {"router": "logreg", "path": str(model_path)},
                "rules": [
                    {"when": {"difficulty": {"lt": report["threshold"]}}, "use": "chat-cheap"}
                ],
                "default": "chat-strong",
            }
        },
        "chat-cheap": {"targets": [{"provider": "chaos", "model": "cheap"}]},
        "chat-strong": {"targets": [{"provider": "chaos", "model": "strong"}]},
    }
    with running_gateway(base_config(store, tmp_path, models=models)) as gw:
        key = gw.create_key()

        def routed(text: str) -> str:
            resp = httpx.post(
                gw.url + "/v1/chat/completions",
                json={"model": "chat", "messages": [{"role": "user", "content": text}]},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            assert resp.status_code == 200, resp.text
            return resp.headers["x-pilothouse-route"]

        assert routed("Say hello to Edsger.").endswith("alias=chat-cheap")
        hard = routed("Prove that the square root of 11 is irrational, step by step.")
        assert hard.endswith("alias=chat-strong")

    refused = cli("routing", "train", "run_cheap", "nope", "--config", str(path))
    assert refused.returncode == 2 and "no eval run 'nope'" in refused.stderr
