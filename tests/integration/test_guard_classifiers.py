"""Content classifiers through the real gateway: provider moderation and an LLM judge.

Every upstream is a ``chaos`` provider: the moderation alias flags its
``flag_words``; the judge alias answers with the JSON verdict its ``replies``
script for a marker word (or with prose, a wrong shape, or late). Each test
checks what a user sees (the refusal, the answer, the stream), the enforcement
receipt on the trace (classifier, score, latency, the classifier call's request)
and that the classifier's own call is a usage row billed to the same key.
"""

# ruff: noqa: E501
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pilothouse.config.load import load_settings
from pilothouse.errors import ConfigError
from tests.support.gateway import ThreadedGateway, base_config

pytestmark = pytest.mark.integration

FLAG = "grobnak"  # the moderation upstream flags it (harassment)
VIOLENT = "zorblat"  # the judge scores it violent
CLEAN = '{"categories": {"violence": 0.02, "hate": 0.01}}'
JUDGE_REPLIES = {
    VIOLENT: '{"categories": {"violence": 0.93, "hate": 0.01}}',
    "prosey": "I would say this text is fine and not violent at all",
    "wrongshape": '{"categories": {"violence": "very"}}',
    "fenced": '```json {"categories": {"violence": 0.88, "hate": 0.0}} ```',
}


def content(classifier: dict[str, Any], action: str = "block") -> dict[str, Any]:
    cats = (
        ["harassment", "violence"] if classifier["type"] == "moderation" else ["violence", "hate"]
    )
    return {"type": "content", "categories": cats, "action": action, "classifier": classifier}


MOD = {"type": "moderation", "model": "mod"}
JUDGE = {"type": "judge", "model": "judge"}
POLICIES: dict[str, dict[str, Any]] = {
    "mod-in": {"input": [content(MOD)]},
    "judge-in": {"input": [content(JUDGE)]},
    "judge-allow": {"input": [content(JUDGE)], "on_error": "allow"},
    "slow-in": {"input": [content({"type": "judge", "model": "judge-slow", "timeout_s": 0.2})]},
    "judge-out": {
        "output": [{"type": "pii", "action": "redact", "ner": False}, content(JUDGE)],
        "holdback_chars": 40,
    },
    "mod-out": {"output": [content(MOD)], "holdback_chars": 40},
    "judge-flag": {"input": [content(JUDGE, action="flag")]},
    "pii-timeout": {
        "output": [{"type": "pii", "action": "redact", "ner": False}],
        "holdback_timeout_s": 0.05,
    },
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedGateway]:
    tmp = tmp_path_factory.mktemp("guard-classifiers")
    cfg = base_config(f"sqlite:///{tmp}/ph.db", tmp)
    cfg["providers"] = {
        "chaos": {"type": "chaos"},  # echoes the user's text
        "stalls": {"type": "chaos", "script": ["stall:4"], "stall_s": 60},
        "moderator": {"type": "chaos", "flag_words": [FLAG]},
        "judge": {"type": "chaos", "reply": CLEAN, "replies": JUDGE_REPLIES},
        "slowjudge": {"type": "chaos", "reply": CLEAN, "latency_ms": {"value": 20000}},
    }
    chat = {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]}
    cfg["guards"] = POLICIES
    cfg["models"] = {
        "mod": {"targets": [{"provider": "moderator", "model": "omni-moderation-latest"}]},
        # The judge alias carries the very policy that calls it: a guard's own call is
        # never guarded, so this cannot recurse.
        "judge": {"targets": [{"provider": "judge", "model": "gpt-4o-mini"}], "guards": "judge-in"},
        "judge-slow": {"targets": [{"provider": "slowjudge", "model": "gpt-4o-mini"}]},
        "stalling": {
            "targets": [{"provider": "stalls", "model": "gpt-4o-mini"}],
            "guards": "pii-timeout",
            "timeout_s": 4,
        },
        **{name: {**chat, "guards": name} for name in POLICIES if name != "pii-timeout"},
    }
    path = tmp / "pilothouse.yaml"
    path.write_text(yaml.safe_dump(cfg))
    gateway = ThreadedGateway(load_settings(path)).start()
    try:
        yield gateway
    finally:
        gateway.stop()


def client(gw: ThreadedGateway, key: str) -> httpx.Client:
    return httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def ask(gw: ThreadedGateway, key: str, alias: str, text: str, **extra: Any) -> httpx.Response:
    with client(gw, key) as c:
        return c.post(
            "/v1/chat/completions",
            json={"model": alias, "messages": [{"role": "user", "content": text}], **extra},
        )


def receipt(gw: ThreadedGateway, request_id: str) -> list[dict[str, Any]]:
    with gw.admin() as admin:
        for _ in range(500):  # the trace is queued when the request ends
            got = admin.get(f"/admin/traces/{request_id}")
            if got.status_code == 200:
                break
        assert got.status_code == 200, got.text
    return [
        {k.removeprefix("pilothouse.guard."): v for k, v in e["attributes"].items()}
        for s in got.json()["spans"]
        if s["name"] == "guard.enforcement"
        for e in s["events"]
    ]


def content_entries(gw: ThreadedGateway, resp: httpx.Response) -> list[dict[str, Any]]:
    return [e for e in receipt(gw, resp.headers["x-request-id"]) if e["type"] == "content"]


def usage_by_model(gw: ThreadedGateway, key_id: str) -> dict[str, dict[str, Any]]:
    with gw.admin() as admin:
        got = admin.get("/admin/usage", params={"key_id": key_id, "group_by": "model"})
    assert got.status_code == 200, got.text
    return {row["model"]: row for row in got.json()["data"]}


def new_key(gw: ThreadedGateway) -> tuple[str, str]:
    with gw.admin() as admin:
        resp = admin.post("/admin/keys", json={"name": "classifier-test"})
    assert resp.status_code == 201, resp.text
    return resp.json()["key"], resp.json()["id"]


def test_moderation_blocks_flagged_input_and_its_call_is_billed_to_the_key(
    gw: ThreadedGateway,
) -> None:
    key, key_id = new_key(gw)
    resp = ask(gw, key, "mod-in", f"you are a {FLAG} and everyone knows it")
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["code"] == "guard_blocked" and "HARASSMENT" in err["message"]
    assert FLAG not in resp.text
    (entry,) = content_entries(gw, resp)
    assert entry["verdict"] == "block" and entry["classifier"] == "moderation"
    assert entry["classifier_model"] == "mod" and entry["score"] == pytest.approx(0.97)
    assert entry["latency_ms"] > 0 and entry["classifier_request"].startswith("req_")
    usage = usage_by_model(gw, key_id)
    assert usage["mod"]["requests"] == 1 and usage["mod-in"]["requests"] == 1
    # the classifier call's own trace names the request it guarded, and holds no content
    child = receipt_trace(gw, entry["classifier_request"])
    assert FLAG not in json.dumps(child)
    with gw.admin() as admin:
        metrics = admin.get("/metrics").text
    assert re.search(
        r'pilothouse_guard_verdicts_total\{action="block",guard="content",stage="input"\} [1-9]',
        metrics,
    )
    assert re.search(
        r'pilothouse_guard_entities_total\{action="block",entity_type="HARASSMENT",guard="content"\} [1-9]',
        metrics,
    )


def receipt_trace(gw: ThreadedGateway, request_id: str) -> dict[str, Any]:
    with gw.admin() as admin:
        for _ in range(500):
            got = admin.get(f"/admin/traces/{request_id}")
            if got.status_code == 200:
                return dict(got.json())
    raise AssertionError(f"no trace for {request_id}")


def test_moderation_passes_clean_input(gw: ThreadedGateway) -> None:
    key, _ = new_key(gw)
    resp = ask(gw, key, "mod-in", "what a lovely morning in Lisbon")
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "what a lovely morning in Lisbon"
    assert "input.content=pass" in resp.headers["x-pilothouse-guards"]


def test_judge_blocks_passes_and_its_tokens_and_cost_show_in_usage(gw: ThreadedGateway) -> None:
    key, key_id = new_key(gw)
    blocked = ask(gw, key, "judge-in", f"tell me about the {VIOLENT} thing")
    assert blocked.status_code == 400 and "VIOLENCE" in blocked.json()["error"]["message"]
    (entry,) = content_entries(gw, blocked)
    assert entry["classifier"] == "judge" and entry["score"] == pytest.approx(0.93)
    passed = ask(gw, key, "judge-in", "tell me about tulips")
    assert passed.status_code == 200, passed.text
    assert "input.content=pass" in passed.headers["x-pilothouse-guards"]
    fenced = ask(gw, key, "judge-in", "a fenced answer please")
    assert fenced.status_code == 400, "a verdict in a code fence is still read"
    judge = usage_by_model(gw, key_id)["judge"]
    assert judge["requests"] == 3 and judge["input_tokens"] > 0 and judge["output_tokens"] > 0
    assert float(judge["cost_usd"]) > 0


@pytest.mark.parametrize("marker", ["prosey", "wrongshape"])
def test_an_unreadable_verdict_blocks_under_on_error_block_and_passes_under_allow(
    gw: ThreadedGateway, marker: str
) -> None:
    key, _ = new_key(gw)
    resp = ask(gw, key, "judge-in", f"some {marker} request")
    assert resp.status_code == 400, resp.text
    assert "fails closed" in resp.json()["error"]["message"]
    (entry,) = content_entries(gw, resp)
    assert entry["verdict"] == "error" and entry["error"] == "ClassifierAnswerError"
    allowed = ask(gw, key, "judge-allow", f"some {marker} request")
    assert allowed.status_code == 200, allowed.text
    assert "input.content=error" in allowed.headers["x-pilothouse-guards"]


def test_a_judge_slower_than_its_timeout_blocks(gw: ThreadedGateway) -> None:
    key, key_id = new_key(gw)
    resp = ask(gw, key, "slow-in", "tell me about tulips")
    assert resp.status_code == 400 and "fails closed" in resp.text
    (entry,) = content_entries(gw, resp)
    assert entry["verdict"] == "error" and entry["error"] == "TimeoutError", entry
    # the abandoned call is still on the books, as a failed row
    assert usage_by_model(gw, key_id)["judge-slow"]["errors"] == 1


def test_flag_allows_and_records_the_score(gw: ThreadedGateway) -> None:
    key, _ = new_key(gw)
    resp = ask(gw, key, "judge-flag", f"the {VIOLENT} story")
    assert resp.status_code == 200
    assert "input.content=flag(VIOLENCE:1)" in resp.headers["x-pilothouse-guards"]


def stream_text(resp: httpx.Response) -> tuple[str, bool]:
    text, error = [], False
    for line in resp.text.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        if "error" in event:
            error = True
        for choice in event.get("choices") or []:
            text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text), error


@pytest.mark.parametrize(("alias", "marker"), [("judge-out", VIOLENT), ("mod-out", FLAG)])
def test_streamed_output_is_judged_before_the_client_sees_it(
    gw: ThreadedGateway, alias: str, marker: str
) -> None:
    key, key_id = new_key(gw)
    words = "one two three four five six seven eight nine ten eleven twelve"
    bad = f"{words} then {marker} arrives and more words follow it here"
    resp = ask(gw, key, alias, bad, stream=True)
    text, error = stream_text(resp)
    assert error and "blocked" in resp.text and marker not in resp.text
    assert text and words.startswith(text.strip()[:20])  # clean windows before it went out
    good = ask(gw, key, alias, f"{words} and nothing else at all", stream=True)
    text, error = stream_text(good)
    assert not error and text == f"{words} and nothing else at all"
    (entry,) = content_entries(gw, good)
    assert entry["verdict"] == "pass" and entry["segment"] == "stream"
    assert entry["classifier"] in ("judge", "moderation") and entry["classifier_calls"] >= 2
    model = "judge" if alias == "judge-out" else "mod"
    calls = entry["classifier_calls"]
    for e in content_entries(gw, resp):  # the blocked stream: windows that passed, the block
        calls += e.get("classifier_calls", 0) + (1 if e.get("classifier_request") else 0)
    assert usage_by_model(gw, key_id)[model]["requests"] == calls


def test_held_text_is_released_when_the_upstream_pauses(gw: ThreadedGateway) -> None:
    """The third word is held (it may continue); the upstream then stalls until the
    deadline. With ``holdback_timeout_s`` it reaches the client before the stream fails."""
    key, _ = new_key(gw)
    resp = ask(gw, key, "stalling", "alpha beta gamma delta epsilon", stream=True)
    text, error = stream_text(resp)
    assert error  # the upstream stalled past the alias's deadline
    assert text == "alpha beta gamma"


def test_classifier_config_errors_are_clear(tmp_path: Path) -> None:
    from pilothouse.config.load import parse_settings
    from pilothouse.guard.engine import GuardEngine

    def build(spec: dict[str, Any]) -> None:
        settings = parse_settings(
            {
                "providers": {"chaos": {"type": "chaos"}},
                "models": {"chat": {"targets": [{"provider": "chaos", "model": "m"}]}},
                "guards": {"p": {"input": [spec]}},
            }
        )
        GuardEngine(settings)

    with pytest.raises(ConfigError, match=r"classifier\.model: no model alias 'nope'"):
        build(content({"type": "judge", "model": "nope"}))
    with pytest.raises(ConfigError, match="needs `model`"):
        build(content({"type": "moderation"}))
    with pytest.raises(ConfigError, match="unknown content classifier 'llm'"):
        build(content({"type": "llm", "model": "chat"}))
    with pytest.raises(ConfigError, match="unknown \\['gore'\\] for the moderation"):
        build(
            {
                "type": "content",
                "categories": ["gore"],
                "classifier": {"type": "moderation", "model": "chat"},
            }
        )
