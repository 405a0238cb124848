"""Ambiguous or malformed body framing is a precise 400 under any ASGI server, never a 500.

uvicorn's parsers refuse most of these themselves; these tests drive the app
directly (ASGI), as a server that passes such headers through would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from pilothouse.config.load import parse_settings
from pilothouse.gateway.app import build_app
from tests.support.gateway import ADMIN_KEY, base_config

BODY = b'{"name": "framing-test"}'


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = build_app(parse_settings(base_config(f"sqlite:///{tmp_path}/f.db", tmp_path)))
    with TestClient(app) as c:
        yield c


def call(client: TestClient, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, Any]]:
    auth = (b"authorization", f"Bearer {ADMIN_KEY}".encode())
    resp = client.post("/admin/keys", content=BODY, headers=[auth, *headers])
    return resp.status_code, resp.json()


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ([(b"content-length", "١٢".encode())], "ASCII digits"),
        ([(b"content-length", b"\xb2")], "ASCII digits"),  # latin-1 superscript two
        ([(b"content-length", b"-5")], "ASCII digits"),
        ([(b"content-length", b"12"), (b"content-length", b"5")], "conflicting"),
        ([(b"transfer-encoding", b"chunked"), (b"content-length", b"12")], "Transfer-Encoding"),
    ],
)
def test_bad_framing_is_a_precise_400(
    client: TestClient, headers: list[tuple[bytes, bytes]], words: str
) -> None:
    status, body = call(client, headers)
    assert status == 400
    assert body["error"]["code"] == "invalid_framing"
    assert words in body["error"]["message"]


def test_a_huge_content_length_is_413_before_reading(client: TestClient) -> None:
    status, body = call(client, [(b"content-length", b"9" * 5000)])
    assert status == 413 and body["error"]["code"] == "request_too_large"
