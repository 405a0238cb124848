"""Redaction recall per kind on generated tricky variants, over-redaction on benign text, speed.

    PYTHONPATH=src python benchmarks/redaction.py [--n 200] [--seed 7]

Prints JSON: for each kind the share of samples whose value was replaced by
that kind's placeholder (recall), the share of benign samples changed at all
(over-redaction), and microseconds per call on a 1 KB prompt. Running the same
script against an older tree measures "before".
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import time
from collections.abc import Callable

import orjson

from pilothouse.guard.redact import Redactor

ZW = "\u200b"
NBSP = "\u00a0"


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch)
            if i % 2:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def iban(country: str, bban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def grouped(value: str, sep: str, size: int = 4) -> str:
    return sep.join(value[i : i + size] for i in range(0, len(value), size))


def _rand(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def emails(rng: random.Random) -> str:
    user = rng.choice(["jose", "müller", "zoë.ann", "用户", "анна", "li+tag", "o'neil"])
    domain = rng.choice(["example.com", "exämple.de", "例子.广告", "пример.рф", "mail.co.uk"])
    value = f"{user}{rng.randint(1, 999)}@{domain}"
    if rng.random() < 0.2:
        value = value.replace("@", ZW + "@")
    return value


def phones(rng: random.Random) -> str:
    area, exch, line = rng.randint(201, 989), rng.randint(201, 989), rng.randint(0, 9999)
    return rng.choice(
        [
            f"{area}{exch}{line:04d}",
            f"({area}) {exch}-{line:04d}",
            f"{area}.{exch}.{line:04d}",
            f"+1 {area} {exch} {line:04d}",
            f"+44 20 {rng.randint(7000, 7999)} {line:04d}",
            f"{area}{NBSP}{exch}{NBSP}{line:04d}",
        ]
    )


def cards(rng: random.Random) -> str:
    number = luhn_complete(rng.choice(["4", "51", "37", "6011"]), 16, rng)
    sep = rng.choice([" ", "-", ".", NBSP, "", ZW])
    return grouped(number, sep)


def ibans(rng: random.Random) -> str:
    value = rng.choice(
        [
            iban("DE", _rand(rng, 18, string.digits)),
            iban("GB", "NWBK" + _rand(rng, 14, string.digits)),
        ]
    )
    style = rng.choice(["upper", "lower", "space", "dash", "lower-space"])
    if style == "lower":
        return value.lower()
    if style == "space":
        return grouped(value, " ")
    if style == "dash":
        return grouped(value, "-")
    if style == "lower-space":
        return grouped(value.lower(), " ")
    return value


def ips(rng: random.Random) -> str:
    v4 = ".".join(str(rng.randint(1, 254)) for _ in range(4))
    v6 = ":".join(f"{rng.randint(0, 65535):x}" for _ in range(8))
    short = f"2001:db8::{rng.randint(1, 65535):x}"
    return rng.choice([v4, v6, short, v4.replace(".", ZW + "."), f"{v4}:8080"]).removesuffix(
        ":8080"
    )


def secrets_(rng: random.Random) -> str:
    aws = _rand(rng, 40, string.ascii_letters + string.digits + "/+")
    return rng.choice(
        [
            f"DB_PASSWORD={_rand(rng, 12)}",
            f"MY_API_KEY={_rand(rng, 24)}",
            f"export GITHUB_TOKEN=ghp_{_rand(rng, 36)}",
            f"aws_secret_access_key = {aws}",
            f"AWS_SECRET_ACCESS_KEY={aws}",
            f'"client_secret": "{_rand(rng, 30)}"',
            f"sk-proj-{_rand(rng, 40)}",
        ]
    )


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "email": emails,
    "phone": phones,
    "card": cards,
    "iban": ibans,
    "ip": ips,
    "secret": secrets_,
}
PLACEHOLDER = {k: f"[{k.upper()}]" for k in GENERATORS}

BENIGN = [
    "Meet me at 10:30 on 2026-12-01; the build took 1733090000 ms.",
    "Version 1.2.3 of the model gpt-4o-mini-2024-07-18 is live.",
    "Order #123456789 shipped; total $1,234.56 for 3 items.",
    "The commit is 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39.",
    "Call the function parse_config(path, strict=True) twice.",
    "Our token budget is 4096 tokens per request and the key is rotated monthly.",
    "Set password length to at least 12 characters.",
    "The ratio was 3.14159 and the p99 latency 120 ms at 500 req/s.",
    "Use std::vector<int> and a::b in C++.",
    "Ticket ABCD-1234 and part 12-3456-7890 arrive Tuesday.",
    "Le café coûte 2,50 € ; naïve façade résumé.",
    "東京タワーは333メートルです。",
    "Run `pip install llama-cpp-python==0.3.36` first.",
    "ISBN 978-3-16-148410-0 is a book.",
    "The api_key field is required (see docs).",
]


def samples(n: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    return {kind: [gen(rng) for _ in range(n)] for kind, gen in GENERATORS.items()}


def recall(redactor: Redactor, n: int, seed: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind, values in samples(n, seed).items():
        hits = 0
        for value in values:
            text, _ = redactor.redact_text(f"note: {value} thanks")
            hits += PLACEHOLDER[kind] in text
        out[kind] = round(hits / len(values), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    redactor = Redactor()
    benign_changed = [t for t in BENIGN if redactor.redact_text(t)[0] != t]
    prompt = " ".join(BENIGN)[:1024]
    rounds = 2000
    start = time.perf_counter()
    for i in range(rounds):
        redactor.redact_text(prompt + str(i))  # defeat memoisation: long text is not memoised
    per_call_us = (time.perf_counter() - start) / rounds * 1e6
    result = {
        "recall": recall(redactor, args.n, args.seed),
        "benign_changed": len(benign_changed),
        "benign_total": len(BENIGN),
        "benign_changed_examples": benign_changed[:5],
        "us_per_1kb_prompt": round(per_call_us, 1),
        "n_per_kind": args.n,
        "python": sys.version.split()[0],
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
