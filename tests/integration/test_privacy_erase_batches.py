"""Erasure reaches the Batch API stores: the subject's line bodies, results and JSONL files
lose their raw text, another subject's batch is untouched, usage and cost stay, and the
residue scan (which now reads batch lines and file bytes) proves it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.batches import chat_line, jsonl, read_lines, upload, wait_done
from tests.support.gateway import ThreadedGateway, base_config, running_gateway
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration

MINE = "my locker code is lapis-lazuli-9981"
THEIRS = "the Lisbon office opens at nine"


@pytest.fixture
def gateway(store_url: str, tmp_path: Path) -> Iterator[ThreadedGateway]:
    config = base_config(
        store_url,
        tmp_path,
        batches={"retry_backoff_s": 0.0},
        providers={"chaos": {"type": "chaos"}},
        models={"chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]}},
    )
    with running_gateway(config) as gw:
        yield gw


def _key(gw: ThreadedGateway) -> tuple[str, str, openai.OpenAI]:
    with gw.admin() as admin:
        made = admin.post("/admin/keys", json={"name": "app"}).json()
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=made["key"], max_retries=0)
    return made["id"], made["key"], client


def _batch(c: openai.OpenAI, text: str, meta: dict[str, str]) -> Any:
    lines = [chat_line("q1", text=text), chat_line("q2", text=f"{text}, again")]
    created = c.batches.create(
        input_file_id=upload(c, jsonl(lines)),
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata=meta,
    )
    batch = wait_done(c, created.id)
    assert batch.status == "completed" and batch.request_counts.completed == 2
    return batch


def _texts(c: openai.OpenAI, batch: Any) -> str:
    ids = (batch.input_file_id, batch.output_file_id, batch.error_file_id)
    return "".join(c.files.content(f).text for f in ids if f)


def _costs(gw: ThreadedGateway) -> list[tuple[str, int]]:
    return sorted((r["request_id"], r["cost_pico"]) for r in usage_rows(gw))


def test_user_erasure_clears_their_batch_lines_and_files(gateway: ThreadedGateway) -> None:
    _id, _secret, c = _key(gateway)
    mine = _batch(c, MINE, {"user": "vera"})
    theirs = _batch(c, THEIRS, {"user": "omar"})
    assert MINE in _texts(c, mine)  # the raw prompt and the chaos echo of it
    costs = _costs(gateway)

    with gateway.admin() as admin:
        done = admin.post("/admin/privacy/erase", json={"user": "vera"})
    assert done.status_code == 200, done.text
    receipt = done.json()
    assert receipt["clean"] is True, receipt
    assert receipt["stores"]["batch_lines"] == 2
    assert receipt["stores"]["files"] == 2  # input and output (no error file)
    assert receipt["residue"]["batch_lines"] == receipt["residue"]["files"] == 0

    text = _texts(c, mine)
    assert "lapis" not in text and "vera" not in c.batches.retrieve(mine.id).model_dump_json()
    out = read_lines(c, mine.output_file_id)
    assert sorted(r["custom_id"] for r in out) == ["q1", "q2"]  # ids still reconcile
    assert all(r["response"]["status_code"] == 200 for r in out)
    assert [r["custom_id"] for r in read_lines(c, mine.input_file_id)] == ["q1", "q2"]
    assert THEIRS in _texts(c, theirs)  # another user's batch is untouched
    assert c.batches.retrieve(theirs.id).metadata == {"user": "omar"}
    assert _costs(gateway) == costs  # usage and cost numbers stay


def test_key_erasure_clears_every_file_of_the_key(gateway: ThreadedGateway) -> None:
    kid, _secret, c = _key(gateway)
    _oid, _osecret, other = _key(gateway)
    batch = _batch(c, MINE, {"job": "nightly"})
    unused = upload(c, jsonl([chat_line("u1", text="an upload no batch used, ACME-tango")]))
    kept = _batch(other, THEIRS, {"job": "nightly"})
    costs = _costs(gateway)

    with gateway.admin() as admin:
        done = admin.post("/admin/privacy/erase", json={"key": kid})
    assert done.status_code == 200, done.text
    receipt = done.json()
    assert receipt["clean"] is True, receipt
    assert receipt["stores"]["batch_lines"] == 2
    assert receipt["stores"]["files"] == 3  # input, output and the unused upload

    assert "lapis" not in _texts(c, batch)
    assert "ACME-tango" not in c.files.content(unused).text
    assert [r["custom_id"] for r in read_lines(c, unused)] == ["u1"]
    assert THEIRS in _texts(other, kept)
    assert _costs(gateway) == costs


def test_request_erasure_clears_one_line(gateway: ThreadedGateway) -> None:
    _kid, _secret, c = _key(gateway)
    batch = _batch(c, MINE, {"job": "one"})
    q1 = next(r for r in read_lines(c, batch.output_file_id) if r["custom_id"] == "q1")
    with gateway.admin() as admin:
        done = admin.post("/admin/privacy/erase", json={"request": q1["response"]["request_id"]})
    assert done.status_code == 200, done.text
    receipt = done.json()
    assert receipt["stores"]["batch_lines"] == 1, receipt
    out = {r["custom_id"]: r for r in read_lines(c, batch.output_file_id)}
    assert "lapis" not in str(out["q1"]) and out["q1"]["response"]["body"] == {"erased": True}
    assert out["q2"]["response"]["body"]["choices"]  # the other line keeps its answer
    inp = {r["custom_id"]: r for r in read_lines(c, batch.input_file_id)}
    assert inp["q1"]["body"] == {"erased": True}
    assert inp["q2"]["body"]["messages"][0]["content"] == f"{MINE}, again"
