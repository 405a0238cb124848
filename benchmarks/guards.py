# ruff: noqa: E501
"""Guard quality and latency on project-owned data; prints one JSON document.

- PII precision/recall per entity type on Faker-generated sentences (seeded),
  PERSON false positives on numeric and log-line negatives, and leakage to the
  upstream under ``pseudonymize`` (values left in the body the provider gets).
- Injection detection and false-positive rates on benchmarks/data/
  injection_{attacks,benign}.jsonl (indirect and per kind reported separately).
- Per-guard latency p50/p99 on a 1 KB prompt; the pattern-tier input pipeline;
  the streaming hold-back cost (chunks held before the first release, and scan
  time per chunk).

Run: PYTHONPATH=src python benchmarks/guards.py [--n 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pilothouse.config.load import parse_settings
from pilothouse.gateway.context import RequestContext
from pilothouse.guard.base import Segment
from pilothouse.guard.engine import GuardEngine
from pilothouse.routing.train import wilson

DATA = Path(__file__).parent / "data"
ENTITIES = [
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
    "PERSON",
]


def engine(policy: dict[str, Any]) -> GuardEngine:
    return GuardEngine(parse_settings({
        "providers": {"chaos": {"type": "chaos"}},
        "guards": {"p": policy},
        "models": {"chat": {"targets": [{"provider": "chaos", "model": "m"}], "guards": "p"}},
    }))  # fmt: skip


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 4)


def rate(k: int, n: int) -> dict[str, Any]:
    """A rate with its counts and Wilson 95% interval: every rate has an interval."""
    low, high = wilson(k, n)
    return {"k": k, "n": n, "rate": round(k / n, 4) if n else None,
            "ci95": [round(low, 4), round(high, 4)]}  # fmt: skip


def pii_samples(n: int) -> list[tuple[str, list[tuple[str, str]]]]:
    from faker import Faker

    fake = Faker("en_US")
    Faker.seed(7)
    makers = {
        "EMAIL_ADDRESS": fake.email,
        "PHONE_NUMBER": lambda: (
            fake.numerify("+1 (###) ###-####").replace("(0", "(2").replace("(1", "(3")
        ),
        "CREDIT_CARD": lambda: fake.credit_card_number(card_type="visa"),
        "IBAN_CODE": fake.iban,
        "US_SSN": fake.ssn,
        "IP_ADDRESS": fake.ipv4_public,
        "PERSON": fake.name,
    }
    templates = ["Please contact {v} about the order.", "The customer record lists {v} as primary.",
                 "Forward this to {v} before Friday.", "Noted: {v}; verify it twice.",
                 "Our records show {v} for this account"]  # fmt: skip
    out = []
    for i in range(n):
        kinds = [ENTITIES[i % len(ENTITIES)], ENTITIES[(i * 3 + 1) % len(ENTITIES)]]
        values = [(k, str(makers[k]())) for k in kinds]
        text = " ".join(
            templates[(i + j) % len(templates)].format(v=v) for j, (_, v) in enumerate(values)
        )
        out.append((text, values))
    return out


def person_negatives(n: int) -> list[str]:
    from faker import Faker

    fake = Faker()
    Faker.seed(3)
    out = []
    for i in range(n):
        ts = fake.date_time(tzinfo=UTC).isoformat()
        out.append(
            [
                f"{ts} ERROR worker-{i % 9} job {fake.hexify('^^^^^^^^')} failed after {i % 500} ms",
                f"GET /api/v1/orders/{fake.random_int(1000, 99999)} 200 {fake.random_int(1, 900)}ms",
                f"Order {fake.random_int(10000, 99999)} total {fake.pyfloat(2, 2, positive=True)} EUR qty {i % 7}",
                f"build {fake.sha1()[:12]} deployed to node-{i % 5} at {ts}",
            ][i % 4]
        )
    return out


async def bench_pii(n: int) -> dict[str, Any]:
    e = engine({"input": [{"type": "pii", "action": "pseudonymize", "entities": ENTITIES}]})
    guard = e.policies["p"].input[0][1]
    tp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    leaked = 0
    total_values = 0
    for text, values in pii_samples(n):
        found = guard.scan(Segment("user", "user[0]", text)).findings
        spans = [(f.entity, text[f.start : f.end]) for f in found]
        for kind, value in values:
            hit = any(k == kind and (value in s or s in value) and len(s) >= 3 for k, s in spans)
            (tp if hit else fn)[kind] += 1
        for k, s in spans:
            if not any(v in s or s in v for _kind, v in values):
                fp[k] += 1  # a span on no true value (a mislabelled true value is a miss, above)
        ctx = RequestContext("req_b", "chat")
        ctx.alias = "chat"
        body = await e.check_chat_input(
            ctx, {"model": "chat", "messages": [{"role": "user", "content": text}]}
        )
        sent = json.dumps(body)
        for _kind, value in values:
            total_values += 1
            leaked += value in sent
    per = {}
    for k in ENTITIES:
        p = tp[k] / (tp[k] + fp[k]) if tp[k] + fp[k] else None
        r = tp[k] / (tp[k] + fn[k]) if tp[k] + fn[k] else None
        per[k] = {
            "precision": p and round(p, 3),
            "recall": r and round(r, 3),
            "tp": tp[k],
            "fn": fn[k],
            "fp": fp[k],
            "precision_ci95": rate(tp[k], tp[k] + fp[k])["ci95"],
            "recall_ci95": rate(tp[k], tp[k] + fn[k])["ci95"],
        }
    negatives = person_negatives(n)
    person_fp = sum(
        any(f.entity == "PERSON" for f in guard.scan(Segment("user", "u", t)).findings)
        for t in negatives
    )
    return {
        "samples": n, "ner": guard.ner is not None, "per_entity": per,
        "upstream_leakage": {"values": total_values, "leaked": leaked,
                             "ci95": rate(leaked, total_values)["ci95"]},
        "person_fp_on_numeric_log_negatives": {"n": len(negatives), "fp": person_fp,
                                               "rate": round(person_fp / len(negatives), 4),
                                               "ci95": rate(person_fp, len(negatives))["ci95"]},
    }  # fmt: skip


def bench_injection() -> dict[str, Any]:
    e = engine({"input": [{"type": "injection", "action": "block", "threshold": 0.5}]})
    guard = e.policies["p"].input[0][1]
    attacks = [json.loads(x) for x in (DATA / "injection_attacks.jsonl").read_text().splitlines()]
    benign = [json.loads(x) for x in (DATA / "injection_benign.jsonl").read_text().splitlines()]
    by_kind: dict[str, list[int]] = defaultdict(list)
    for a in attacks:
        hit = bool(guard.scan(Segment(a["provenance"], "s", a["text"])).findings)
        by_kind[a["kind"]].append(hit)
    fps: dict[str, list[int]] = defaultdict(list)
    for b in benign:
        fps[b["kind"]].append(bool(guard.scan(Segment(b["provenance"], "s", b["text"])).findings))
    all_hits = [h for v in by_kind.values() for h in v]
    all_fp = [h for v in fps.values() for h in v]
    return {
        "attacks": len(attacks), "benign": len(benign),
        "detection_rate": round(sum(all_hits) / len(all_hits), 4),
        "detection": rate(sum(all_hits), len(all_hits)),
        "false_positive_rate": round(sum(all_fp) / len(all_fp), 4),
        "false_positives": rate(sum(all_fp), len(all_fp)),
        "by_kind": {k: {"n": len(v), "detected": round(sum(v) / len(v), 4),
                        "ci95": rate(sum(v), len(v))["ci95"]} for k, v in by_kind.items()},
        "fp_by_kind": {k: {"n": len(v), "fp_rate": round(sum(v) / len(v), 4),
                           "ci95": rate(sum(v), len(v))["ci95"]} for k, v in fps.items()},
    }  # fmt: skip


PROMPT_1K = (
    "Hello, I am writing about my recent order. The package arrived late and one item was "
    "missing. Could you check what happened and let me know the options for a refund or a "
    "replacement? I have attached the receipt. Please reply to jane.roe@example.com or call "
    "me on +1 415 555 2671 in the afternoon. Reference ACME-123456. Thank you for your help, "
) * 3


async def bench_latency(repeats: int) -> dict[str, Any]:
    prompt = PROMPT_1K[:1024]
    specs = {
        "pii": {"type": "pii", "action": "redact", "ner": False},
        "pii+ner": {"type": "pii", "action": "redact", "ner": True},
        "secrets": {"type": "secrets", "action": "block"},
        "injection": {"type": "injection", "action": "block"},
        "regex": {"type": "regex", "name": "ids", "pattern": "ACME-\\d{6}", "action": "redact"},
        "content": {"type": "content", "action": "block"},
    }
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        guard = engine({"input": [spec]}).policies["p"].input[0][1]
        ts, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            guard.scan(Segment("user", "u", prompt))
            ts.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        out[name] = {"p50_ms": pct(ts, 0.5), "p99_ms": pct(ts, 0.99), "cpu_p50_ms": pct(cpu, 0.5)}
    pattern = engine(
        {"input": [specs["pii"], specs["secrets"], specs["injection"], specs["regex"]]}
    )
    ts, cpu = [], []
    for _ in range(repeats):
        ctx = RequestContext("req_l", "chat")
        ctx.alias = "chat"
        t0, c0 = time.perf_counter(), time.process_time()
        await pattern.check_chat_input(
            ctx, {"model": "chat", "messages": [{"role": "user", "content": prompt}]}
        )
        ts.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    # On a shared machine wall time includes waiting for a core; CPU time is the work.
    out["pattern_tier_input_pipeline_1kb"] = {
        "p50_ms": pct(ts, 0.5), "p99_ms": pct(ts, 0.99), "cpu_p50_ms": pct(cpu, 0.5),
        "cpu_p99_ms": pct(cpu, 0.99),
    }  # fmt: skip
    return out


async def bench_holdback(repeats: int) -> dict[str, Any]:
    e = engine({"output": [{"type": "pii", "action": "redact", "ner": False}, {"type": "secrets", "action": "redact"},
                           {"type": "content", "action": "block"}, {"type": "canary", "action": "block"}]})  # fmt: skip
    words = ("Sure, here is the summary of your order and the next steps we can take " * 4).split(
        " "
    )
    first_release_chunks = []
    per_chunk = []
    for _ in range(repeats):
        ctx = RequestContext("req_s", "chat")
        ctx.alias = "chat"
        await e.check_chat_input(
            ctx, {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        )
        sg = e.stream_guard(ctx)
        released_at = None
        for i, w in enumerate(words):
            t0 = time.perf_counter()
            out = await sg.feed(
                {"choices": [{"index": 0, "delta": {"content": (" " if i else "") + w}}]}
            )
            per_chunk.append((time.perf_counter() - t0) * 1000)
            if released_at is None and any(c["choices"][0]["delta"].get("content") for c in out):
                released_at = i
        first_release_chunks.append(released_at or 0)
    return {
        "chunks_held_before_first_release": statistics.median(first_release_chunks),
        "scan_per_chunk_p50_ms": pct(per_chunk, 0.5), "scan_per_chunk_p99_ms": pct(per_chunk, 0.99),
        "note": "added TTFT = one inter-chunk gap (the first token is held until the next arrives) + scan time",
    }  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
        "load_average": os.getloadavg(),
        "pii": await bench_pii(args.n),
        "injection": bench_injection(),
        "latency": await bench_latency(args.repeats),
        "holdback": await bench_holdback(50),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
