"""The Batch API through the official `openai` client: files, batches, results, ownership."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.batches import chat_line, jsonl, read_lines, upload, wait_done
from tests.support.gateway import ADMIN_KEY, ThreadedGateway, base_config, running_gateway
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(store_url: str, tmp_path: Path) -> Iterator[ThreadedGateway]:
    config = base_config(
        store_url,
        tmp_path,
        batches={"max_file_bytes": 64 * 1024, "retry_backoff_s": 0.0},
        providers={"chaos": {"type": "chaos", "flag_words": ["forbidden"]}},
        models={
            "chat": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]},
            "other": {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]},
            "emb": {"targets": [{"provider": "chaos", "model": "text-embedding-3-small"}]},
            "mod": {"targets": [{"provider": "chaos", "model": "omni-moderation-latest"}]},
            "legacy": {
                "targets": [{"provider": "chaos", "model": "gpt-4o-mini"}],
                "completions_from_chat": True,
            },
        },
    )
    with running_gateway(config) as gw:
        yield gw


def client(gw: ThreadedGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def test_batch_round_trip_with_the_official_client(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key(models=["chat", "emb"]))
    lines = [
        chat_line("a", text="first question"),
        chat_line("b", text="second question"),
        chat_line("forbidden", model="other"),  # the key may not use `other`: a per-line 403
        chat_line("unknown", model="nope"),
    ]
    file = c.files.create(file=("in.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    assert file.purpose == "batch" and file.bytes == len(jsonl(lines))
    assert c.files.retrieve(file.id).filename == "in.jsonl"
    assert c.files.content(file.id).content == jsonl(lines)

    created = c.batches.create(
        input_file_id=file.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "nightly"},
    )
    assert created.status == "validating" and created.request_counts.total == 4
    batch = wait_done(c, created.id)
    assert batch.status == "completed"
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    assert batch.metadata == {"job": "nightly"}
    assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 2)

    output = {r["custom_id"]: r for r in read_lines(c, batch.output_file_id)}
    assert sorted(output) == ["a", "b"]
    answer = output["a"]["response"]
    assert answer["status_code"] == 200 and output["a"]["error"] is None
    assert answer["body"]["choices"][0]["message"]["content"].endswith("first question")
    assert answer["request_id"].startswith("req_") and output["a"]["id"].startswith("batch_req_")

    errors = {r["custom_id"]: r["response"] for r in read_lines(c, batch.error_file_id)}
    assert errors["forbidden"]["status_code"] == 403
    assert errors["forbidden"]["body"]["error"]["code"] == "model_not_allowed"
    assert errors["unknown"]["status_code"] == 404

    # One usage record per line, carrying the batch and the line it belongs to.
    rows = [r for r in usage_rows(gateway) if (r["metadata"] or {}).get("batch_id") == batch.id]
    assert sorted(r["metadata"]["custom_id"] for r in rows) == ["a", "b", "forbidden", "unknown"]
    by_request = {r["request_id"]: r for r in rows}
    assert by_request[answer["request_id"]]["cost_pico"] > 0
    assert by_request[answer["request_id"]]["status"] == 200

    listed = c.batches.list(limit=10)
    assert [b.id for b in listed.data] == [batch.id]
    ids = {f.id for f in c.files.list()}
    assert {file.id, batch.output_file_id, batch.error_file_id} <= ids


def test_embeddings_responses_and_completions_batches(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key())
    emb = [
        {"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
         "body": {"model": "emb", "input": f"text {i}"}}
        for i in range(3)
    ]  # fmt: skip
    batch = c.batches.create(
        input_file_id=upload(c, jsonl(emb)), endpoint="/v1/embeddings", completion_window="24h"
    )
    batch = wait_done(c, batch.id)
    assert batch.status == "completed" and batch.request_counts.completed == 3
    out = read_lines(c, batch.output_file_id)
    assert all(r["response"]["body"]["data"][0]["embedding"] for r in out)

    resp = [
        {"custom_id": "r1", "method": "POST", "url": "/v1/responses",
         "body": {"model": "chat", "input": "say hi", "store": False}}
    ]  # fmt: skip
    batch = c.batches.create(
        input_file_id=upload(c, jsonl(resp)), endpoint="/v1/responses", completion_window="24h"
    )
    batch = wait_done(c, batch.id)
    (line,) = read_lines(c, batch.output_file_id)
    body = line["response"]["body"]
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"].endswith("say hi")

    legacy = [
        {"custom_id": "t1", "method": "POST", "url": "/v1/completions",
         "body": {"model": "legacy", "prompt": "once upon", "max_tokens": 8}},
        {"custom_id": "t2", "method": "POST", "url": "/v1/completions",
         "body": {"model": "chat", "prompt": "no translation asked"}},
    ]  # fmt: skip
    batch = c.batches.create(
        input_file_id=upload(c, jsonl(legacy)), endpoint="/v1/completions", completion_window="24h"
    )
    batch = wait_done(c, batch.id)
    (line,) = read_lines(c, batch.output_file_id)
    assert line["custom_id"] == "t1"
    assert line["response"]["body"]["object"] == "text_completion"
    assert line["response"]["body"]["choices"][0]["text"]
    (refused,) = read_lines(c, batch.error_file_id)
    assert refused["response"]["status_code"] == 400
    assert "completions_from_chat" in refused["response"]["body"]["error"]["message"]

    mod = [
        {"custom_id": "m1", "method": "POST", "url": "/v1/moderations",
         "body": {"model": "mod", "input": "a forbidden word"}},
        {"custom_id": "m2", "method": "POST", "url": "/v1/moderations",
         "body": {"model": "mod", "input": "fine"}},
    ]  # fmt: skip
    batch = c.batches.create(
        input_file_id=upload(c, jsonl(mod)), endpoint="/v1/moderations", completion_window="24h"
    )
    batch = wait_done(c, batch.id)
    flagged = {
        r["custom_id"]: r["response"]["body"]["results"][0]["flagged"]
        for r in read_lines(c, batch.output_file_id)
    }
    assert flagged == {"m1": True, "m2": False}


def test_invalid_input_fails_the_batch_with_every_bad_line(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key())
    good = chat_line("ok")
    content = b"".join(
        [
            jsonl([good]),
            b"{not json\n",
            jsonl([chat_line("ok")]),  # duplicate custom_id
            jsonl([{**chat_line("get"), "method": "GET"}]),
            jsonl([{**chat_line("emb"), "url": "/v1/embeddings"}]),
            jsonl([{"method": "POST", "url": "/v1/chat/completions", "body": {}}]),
        ]
    )
    batch = c.batches.create(
        input_file_id=upload(c, content), endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "failed" and batch.failed_at is not None
    assert batch.errors is not None and batch.errors.data is not None
    found = {(e.line, e.code) for e in batch.errors.data}
    assert found == {
        (2, "invalid_json_line"),
        (3, "duplicate_custom_id"),
        (4, "invalid_method"),
        (5, "mismatched_endpoint"),
        (6, "missing_custom_id"),
    }
    assert c.batches.retrieve(batch.id).status == "failed"  # nothing ever ran
    assert not [r for r in usage_rows(gateway) if (r["metadata"] or {}).get("batch_id")]


def test_create_time_refusals_are_precise(gateway: ThreadedGateway) -> None:
    c = client(gateway, gateway.create_key())
    file_id = upload(c, jsonl([chat_line("a")]))
    with pytest.raises(openai.BadRequestError) as bad:
        c.batches.create(input_file_id=file_id, endpoint="/v1/audio/speech",  # type: ignore[arg-type]
                         completion_window="24h")  # fmt: skip
    assert bad.value.body["code"] == "unsupported_endpoint"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        c.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                         completion_window="1h")  # type: ignore[arg-type]  # fmt: skip
    assert bad.value.body["param"] == "completion_window"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        c.batches.create(input_file_id="file-missing", endpoint="/v1/chat/completions",
                         completion_window="24h")  # fmt: skip
    with pytest.raises(openai.BadRequestError) as bad:
        c.files.create(file=("x.jsonl", io.BytesIO(b"{}")), purpose="assistants")
    assert bad.value.body["param"] == "purpose"  # type: ignore[index]
    with pytest.raises(openai.APIStatusError) as big:
        c.files.create(file=("big.jsonl", io.BytesIO(b"x" * (64 * 1024 + 1))), purpose="batch")
    assert big.value.status_code == 413
    assert "batches.max_file_bytes" in big.value.message
    with pytest.raises(openai.NotFoundError):
        c.batches.retrieve("batch_\x00")
    raw = httpx.post(gateway.url + "/v1/files", headers={"Authorization": "Bearer nope"})
    assert raw.status_code == 401


def test_keys_see_only_their_own_files_and_batches(gateway: ThreadedGateway) -> None:
    alice = client(gateway, gateway.create_key(name="alice"))
    bob = client(gateway, gateway.create_key(name="bob"))
    file_id = upload(alice, jsonl([chat_line("a")]))
    batch = alice.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    with pytest.raises(openai.NotFoundError):
        bob.files.retrieve(file_id)
    with pytest.raises(openai.NotFoundError):
        bob.files.content(file_id)
    with pytest.raises(openai.NotFoundError):
        bob.files.delete(file_id)
    with pytest.raises(openai.NotFoundError):
        bob.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        bob.batches.cancel(batch.id)
    with pytest.raises(openai.NotFoundError):  # bob cannot run a batch on alice's file
        bob.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                           completion_window="24h")  # fmt: skip
    assert bob.batches.list().data == [] and list(bob.files.list()) == []

    admin = client(gateway, ADMIN_KEY)
    assert [b.id for b in admin.batches.list().data] == [batch.id]
    assert admin.files.retrieve(file_id).id == file_id
    done = wait_done(admin, batch.id)
    assert done.status == "completed"
    with pytest.raises(openai.PermissionDeniedError):  # a batch runs as an inference key
        admin.files.create(file=("x.jsonl", io.BytesIO(jsonl([chat_line("a")]))), purpose="batch")

    assert alice.files.delete(file_id).deleted
    with pytest.raises(openai.NotFoundError):
        alice.files.retrieve(file_id)
