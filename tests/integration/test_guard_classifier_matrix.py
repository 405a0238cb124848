"""The conformance matrix for remote content classifiers, through one real gateway.

Every built-in remote classifier (moderation, judge) x stage (input, output) x
action (pass, block, redact, flag, error under each ``on_error``) x surface (chat
JSON and stream, Anthropic ``/v1/messages`` JSON and stream, ``/v1/responses``
stream, embeddings, cache hits). The classifier list is enumerated from the
classifier registry, so a new built-in classifier fails here until it has cells.
Each cell proves the guard ran (receipt, with the classifier named), the action
happened (what the client read; the echo upstream answers with what it received)
and that the classifier's own call is a usage row of the caller's key. Error cells
use a moderation alias whose upstream fails and a judge that answers in prose.
"""

# ruff: noqa: E501
from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from pilothouse.cache.response_cache import cache_key
from pilothouse.config.load import load_settings
from pilothouse.guard.content import classifier_names
from tests.integration.test_guard_classifiers import (
    FLAG,
    JUDGE_REPLIES,
    VIOLENT,
    receipt,
    usage_by_model,
)
from tests.integration.test_guard_matrix import answer_text, blocked
from tests.support.gateway import ThreadedGateway, base_config

pytestmark = pytest.mark.integration

# classifier -> (categories, the marker it acts on, the entity it reports, good alias, failing alias)
CLASSIFIERS: dict[str, tuple[list[str], str, str, str, str]] = {
    "moderation": (["harassment", "violence"], FLAG, "HARASSMENT", "mod", "mod-down"),
    "judge": (["violence", "hate"], VIOLENT, "VIOLENCE", "judge", "judge-prose"),
}
ACTIONS = ("pass", "block", "redact", "flag", "error", "error_allow")
SURFACES = (
    "chat",
    "chat-stream",
    "messages",
    "messages-stream",
    "responses-stream",
    "embeddings",
    "cached",
)
STREAMS = {"chat-stream", "messages-stream", "responses-stream"}
BENIGN = "What is the weather like in Lisbon in spring"


def cells() -> Iterator[tuple[str, str, str, str]]:
    for clf in CLASSIFIERS:
        for stage in ("input", "output"):
            for action in ACTIONS:
                for surface in SURFACES:
                    if surface == "embeddings" and stage == "output":
                        continue  # no answer text
                    yield clf, stage, action, surface


CELLS = list(cells())


def policy_name(clf: str, stage: str, action: str) -> str:
    return f"x-{clf}-{stage}-{action}"


def policy(clf: str, stage: str, action: str) -> dict[str, Any]:
    cats, _marker, _entity, good, bad = CLASSIFIERS[clf]
    act = action if action in ("block", "redact", "flag") else "block"
    model = bad if action.startswith("error") else good
    spec = {"type": "content", "categories": cats, "action": act,
            "classifier": {"type": clf, "model": model}}  # fmt: skip
    return {stage: [spec], "on_error": "allow" if action == "error_allow" else "block"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedGateway]:
    tmp = tmp_path_factory.mktemp("classifier-matrix")
    cfg = base_config(f"sqlite:///{tmp}/ph.db", tmp)
    cfg["providers"] = {
        "chaos": {"type": "chaos"},  # echoes what it received
        "moderator": {"type": "chaos", "flag_words": [FLAG]},
        "moderator-down": {"type": "chaos", "error_rate": 1.0, "error_status": 503},
        "judge": {
            "type": "chaos",
            "reply": '{"categories": {"violence": 0.02, "hate": 0.01}}',
            "replies": JUDGE_REPLIES,
        },
        "judge-prose": {"type": "chaos", "reply": "This text looks perfectly fine to me"},
    }
    chat = {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]}
    models: dict[str, Any] = {
        "mod": {"targets": [{"provider": "moderator", "model": "omni-moderation-latest"}]},
        "mod-down": {
            "targets": [{"provider": "moderator-down", "model": "omni-moderation-latest"}]
        },
        "judge": {"targets": [{"provider": "judge", "model": "gpt-4o-mini"}]},
        "judge-prose": {"targets": [{"provider": "judge-prose", "model": "gpt-4o-mini"}]},
    }
    cfg["guards"] = {}
    for clf, stage, action in {(c, s, a) for c, s, a, _ in CELLS}:
        name = policy_name(clf, stage, action)
        cfg["guards"][name] = policy(clf, stage, action)
        models[name] = {**chat, "guards": name}
        models[name + "--c"] = {**chat, "guards": name, "cache": {"ttl_s": 600}}
        models[name + "--e"] = {
            "targets": [{"provider": "chaos", "model": "text-embedding-3-small"}],
            "guards": name,
        }
    cfg["models"] = models
    path = tmp / "pilothouse.yaml"
    path.write_text(yaml.safe_dump(cfg))
    gateway = ThreadedGateway(load_settings(path)).start()
    try:
        yield gateway
    finally:
        gateway.stop()


def request_for(surface: str, alias: str, text: str) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "user", "content": text}]
    stream = {"stream": True} if surface in STREAMS else {}
    if surface.startswith("messages"):
        return "/v1/messages", {"model": alias, "max_tokens": 64, "messages": messages, **stream}
    if surface.startswith("responses"):
        return "/v1/responses", {"model": alias, "input": text, **stream}
    if surface == "embeddings":
        return "/v1/embeddings", {"model": alias + "--e", "input": [text]}
    if surface == "cached":
        alias += "--c"
    return "/v1/chat/completions", {"model": alias, "messages": messages, **stream}


def seed_cache(gw: ThreadedGateway, alias: str, body: dict[str, Any], answer: str) -> None:
    assert gw.runtime is not None
    completion = {"id": "chatcmpl-seeded", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                  "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}]}  # fmt: skip
    coro = gw.runtime.cache.set(
        cache_key(alias, body, route_version=gw.runtime.route_version), completion, 600
    )
    asyncio.run_coroutine_threadsafe(coro, gw.server_loop()).result(10)


def test_every_builtin_remote_classifier_has_cells() -> None:
    remote = {name for name in classifier_names() if name != "pattern"}
    assert remote == set(CLASSIFIERS), "add the new classifier to CLASSIFIERS"


@pytest.mark.parametrize(
    ("clf", "stage", "action", "surface"), CELLS, ids=["-".join(c) for c in CELLS]
)
def test_classifier_cell(
    gw: ThreadedGateway, clf: str, stage: str, action: str, surface: str
) -> None:
    _cats, marker, entity, good, bad = CLASSIFIERS[clf]
    with gw.admin() as admin:
        made = admin.post("/admin/keys", json={"name": "matrix"}).json()
    key, key_id = made["key"], made["id"]
    acts = action != "pass"
    text = f"{uuid.uuid4().hex[:10]} {'the ' + marker + ' plan is ready' if acts else BENIGN}"
    name = policy_name(clf, stage, action)
    path, body = request_for(surface, name, text)
    headers = {"Authorization": f"Bearer {key}", "x-api-key": key}
    if surface == "cached":
        if stage == "output":  # an answer already in the cache is judged like a fresh one
            seed_cache(gw, body["model"], body, text)
        else:
            httpx.post(gw.url + path, json=body, headers=headers, timeout=30)
    resp = httpx.post(gw.url + path, json=body, headers=headers, timeout=30)
    answer = answer_text(resp)

    # 1. The guard ran, with this classifier, and the receipt says what it decided.
    entries = [
        e
        for e in receipt(gw, resp.headers["x-request-id"])
        if e["type"] == "content" and e["stage"] == stage
    ]
    verdicts = {e["verdict"] for e in entries}
    want = "error" if action.startswith("error") else action
    assert verdicts == {want}, (verdicts, resp.text[:300])
    assert all(e["classifier"] == clf for e in entries)

    # 2. The action happened where a user would see it.
    if action in ("block", "error"):
        assert blocked(resp), (resp.status_code, resp.text[:300])
        assert marker not in resp.text
        if action == "error":
            assert "on_error: block" in resp.text
    else:
        assert resp.status_code == 200, resp.text[:300]
        if surface != "embeddings":
            if action == "redact":
                assert marker not in answer and re.search(rf"<{entity}_1>", answer), answer
            else:
                assert text in answer, answer  # the echo upstream got it, the client read it
        if surface == "cached":
            hit = resp.headers.get("x-pilothouse-cache") == "hit"
            assert hit is (action != "error_allow" or stage == "output"), resp.headers

    # 3. The classifier's call is a usage row of the caller's key, on its own alias.
    alias = bad if action.startswith("error") else good
    assert usage_by_model(gw, key_id)[alias]["requests"] >= 1
