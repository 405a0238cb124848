"""Redaction of the variants issue 8 found leaking, and no redaction of ordinary text.

Pure (no sockets): the same Redactor runs on every stored or exported prompt.
Recall over a generated set per kind is measured by ``benchmarks/redaction.py``.
"""

from __future__ import annotations

import pytest

from pilothouse.guard.redact import Redactor

AWS_SECRETS = [
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    "Xq9+ab/CDef12GHij34KLmn56OPqr78STuv90WXy",
]

LEAKS = [
    ("DB_PASSWORD=hunter2hunter2", "hunter2hunter2", "[SECRET]"),
    ("MY_API_KEY=abcd1234efgh5678", "abcd1234efgh5678", "[SECRET]"),
    ("export GITHUB_TOKEN=ghp_" + "a1B2" * 9, "a1B2" * 9, "[SECRET]"),
    *[(f"aws_secret_access_key = {s}", s, "[SECRET]") for s in AWS_SECRETS],
    *[(f"AWS_SECRET_ACCESS_KEY={s}", s, "[SECRET]") for s in AWS_SECRETS],
    ("card 4111\u00a01111\u00a01111\u00a01111 ok", "1111", "[CARD]"),
    ("card 4111.1111.1111.1111 ok", "4111", "[CARD]"),
    ("card 4111\u200b1111\u200b1111\u200b1111 ok", "4111", "[CARD]"),
    ("iban de89370400440532013000 ok", "370400", "[IBAN]"),
    ("iban DE89-3704-0044-0532-0130-00 ok", "3704", "[IBAN]"),
    ("iban de89 3704 0044 0532 0130 00 ok", "3704", "[IBAN]"),
    ("mail josé.müller@exämple.de now", "exämple", "[EMAIL]"),
    ("mail 用户@例子.广告 now", "用户", "[EMAIL]"),
    ("mail anna\u200b@example.com now", "anna", "[EMAIL]"),
    ("call 4155552671 today", "4155552671", "[PHONE]"),
    ("call 415\u00a0555\u00a02671 today", "2671", "[PHONE]"),
    ("host 10.0\u200b.0.12 down", "10.0", "[IP]"),
]


@pytest.mark.parametrize(("text", "value", "placeholder"), LEAKS)
def test_issue_variants_are_redacted(text: str, value: str, placeholder: str) -> None:
    out, counts = Redactor().redact_text(text)
    assert value not in out
    assert placeholder in out
    assert sum(counts.values()) >= 1


BENIGN = [
    "Meet me at 10:30 on 2026-12-01; the build took 1733090000 ms.",
    "Version 1.2.3 of the model gpt-4o-mini-2024-07-18 is live.",
    "Order #123456789 shipped; total $1,234.56 for 3 items.",
    "The commit is 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39.",
    "Our token budget is 4096 tokens per request and the key is rotated monthly.",
    "Set password length to at least 12 characters.",
    "The api_key field is required (see docs).",
    "Use std::vector<int> and a::b in C++.",
    "Le café coûte 2,50 € ; naïve façade résumé.",
    "ISBN 978-3-16-148410-0 is a book; ticket ABCD-1234.",
    "The ratio was 3.14159 and p99 120 ms at 500 req/s; pi ≈ 3.1415926535.",
    "Unix time 1733090000 and 1234567890 are not phone numbers.",
]


@pytest.mark.parametrize("text", BENIGN)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor().redact_text(text) == (text, {})
