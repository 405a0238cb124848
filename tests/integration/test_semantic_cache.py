"""The semantic cache through the real gateway with the real MiniLM embedder.

The chaos upstream echoes the last user turn, so a hit is visible in the
answer itself: it is the *first* question's text, not the one just asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pilothouse.config.load import load_settings, parse_settings
from pilothouse.errors import ConfigError
from tests.support.gateway import ThreadedGateway, base_config, running_gateway, write_config
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration

SEMANTIC = {"embedder": "embed-local", "threshold": 0.8, "scope": "key"}
PROVIDERS = {
    "chaos": {"type": "chaos"},
    "minilm": {"type": "local_embeddings", "model": "all-minilm-l6-v2"},
}
GUARDS = {
    "pii": {"input": [{"type": "pii", "action": "pseudonymize", "entities": ["EMAIL_ADDRESS"]}]}
}


def models(**semantic: Any) -> dict[str, Any]:
    target = [{"provider": "chaos", "model": "gpt-4o-mini"}]
    cache = {"ttl_s": 300, "semantic": {**SEMANTIC, **semantic}}
    return {
        "chat": {"targets": target, "cache": cache},
        "team-chat": {
            "targets": target,
            "cache": {**cache, "semantic": {**cache["semantic"], "scope": "team"}},
        },
        "guarded": {"targets": target, "cache": cache, "guards": "pii"},
        "embed-local": {"targets": [{"provider": "minilm", "model": "all-minilm-l6-v2"}]},
    }


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedGateway]:
    tmp = tmp_path_factory.mktemp("semcache")
    cfg = base_config(
        f"sqlite:///{tmp}/ph.db", tmp, providers=PROVIDERS, models=models(), guards=GUARDS
    )
    with running_gateway(cfg) as gateway:
        yield gateway


def ask(
    gw: ThreadedGateway,
    key: str,
    text: str,
    model: str = "chat",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    resp = httpx.post(
        gw.url + "/v1/chat/completions",
        json={k: v for k, v in body.items() if v is not None},
        headers={"Authorization": f"Bearer {key}", **(headers or {})},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    return resp


def answer(resp: httpx.Response) -> str:
    return str(resp.json()["choices"][0]["message"]["content"])


def test_paraphrase_is_a_semantic_hit_with_zero_cost_and_a_labelled_trace(
    gw: ThreadedGateway,
) -> None:
    key = gw.create_key()
    first = ask(gw, key, "How do I reset my password?")
    assert "x-pilothouse-cache" not in first.headers
    hit = ask(gw, key, "What is the way to reset my password?")
    assert hit.headers["x-pilothouse-cache"] == "semantic"
    assert answer(hit) == answer(first) == "How do I reset my password?"
    assert hit.headers["x-pilothouse-cost-usd"] == "0"
    exact = ask(gw, key, "  how do I RESET my   password ")
    assert exact.headers["x-pilothouse-cache"] == "hit"
    [row] = usage_rows(gw, request_id=hit.headers["x-request-id"])
    assert row["cache_hit"] is True and row["cache_kind"] == "semantic"
    assert row["cost_pico"] == 0 and row["provider"] == "cache"
    assert row["cache_tokens_saved"] and row["cache_tokens_saved"] > 0
    with gw.admin() as admin:
        trace = admin.get("/admin/traces/" + hit.headers["x-request-id"]).json()
    [root] = [s for s in trace["spans"] if s["name"] == "chat chat"]
    attrs = root["attributes"]
    assert attrs["pilothouse.cache.kind"] == "semantic"
    assert 0.8 <= attrs["pilothouse.cache.similarity"] < 1.0
    assert attrs["pilothouse.cache.entry_id"].startswith("sem_")


@pytest.mark.parametrize(
    ("question", "other"),
    [
        ("Can I get a refund for my order?", "Can I not get a refund for my order?"),
        ("Is Paris bigger than London?", "Is London bigger than Paris?"),
        ("How long does shipping to Canada take?", "How long does shipping to Mexico take?"),
        ("Can I return an item after 30 days?", "Can I return an item after 60 days?"),
    ],
)
def test_content_gate_refuses_near_neighbours_with_another_answer(
    gw: ThreadedGateway, question: str, other: str
) -> None:
    key = gw.create_key()
    ask(gw, key, question)
    refused = ask(gw, key, other)
    assert "x-pilothouse-cache" not in refused.headers
    assert answer(refused) == other  # the upstream answered the question actually asked


def test_scope_is_per_key_unless_team_is_chosen(gw: ThreadedGateway) -> None:
    a = gw.create_key(metadata={"team": "support"})
    b = gw.create_key(metadata={"team": "support"})
    ask(gw, a, "Where can I download my invoice?")
    assert "x-pilothouse-cache" not in ask(gw, b, "Where do I download my invoice?").headers
    ask(gw, a, "Where can I download my invoice?", model="team-chat")
    shared = ask(gw, b, "Where do I download my invoice?", model="team-chat")
    assert shared.headers["x-pilothouse-cache"] == "semantic"
    other_team = gw.create_key(metadata={"team": "sales"})
    assert (
        "x-pilothouse-cache"
        not in ask(gw, other_team, "Where do I download my invoice?", model="team-chat").headers
    )


def test_the_exact_tier_keeps_the_scope_too(gw: ThreadedGateway) -> None:
    """An identical question from another key (or tenant) is not answered from its cache."""
    question = "Which invoice address do you have on file for me?"
    a = gw.create_key(metadata={"team": "support", "tenant": "acme"})
    b = gw.create_key(metadata={"team": "support", "tenant": "acme"})
    other_tenant = gw.create_key(metadata={"team": "support", "tenant": "globex"})
    ask(gw, a, question)
    assert ask(gw, a, question).headers["x-pilothouse-cache"] == "hit"
    assert "x-pilothouse-cache" not in ask(gw, b, question).headers  # scope: key
    ask(gw, a, question, model="team-chat")
    assert ask(gw, b, question, model="team-chat").headers["x-pilothouse-cache"] == "hit"
    assert "x-pilothouse-cache" not in ask(gw, other_tenant, question, model="team-chat").headers


TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize(
    ("model", "text", "extra", "headers"),
    [
        ("chat", "What time does support open?", {"tools": TOOLS}, None),
        ("chat", "What time does support open today?", {"temperature": 0.7}, None),
        ("chat", "When does the support desk open?", {}, {"Cache-Control": "no-store"}),
        ("guarded", "Write to maria.lopez@example.org about the delay", {}, None),
    ],
)
def test_never_cached(
    gw: ThreadedGateway, model: str, text: str, extra: dict[str, Any], headers: Any
) -> None:
    key = gw.create_key()
    for _ in range(2):
        resp = ask(gw, key, text, model=model, headers=headers, **extra)
        assert "x-pilothouse-cache" not in resp.headers
    # Neither request was answered by a cache: both reached the upstream.
    assert resp.headers["x-pilothouse-target"].startswith("chaos/")


def test_temperature_is_cached_when_allowed(tmp_path: Path) -> None:
    cfg = base_config(
        f"sqlite:///{tmp_path}/ph.db",
        tmp_path,
        providers=PROVIDERS,
        models=models(allow_nonzero_temperature=True),
        guards=GUARDS,
    )
    with running_gateway(cfg) as gw:
        key = gw.create_key()
        ask(gw, key, "How do I change my email address?", temperature=0.7)
        hit = ask(gw, key, "How can I change my email address?", temperature=0.7)
        assert hit.headers["x-pilothouse-cache"] == "semantic"


BUNDLE: dict[str, Any] = {
    "name": "faq",
    "description": "FAQ answers.",
    "model": "chat",
    "params": {"temperature": 0, "max_tokens": 100},
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "{{ question }}"},
    ],
    "variables": {"question": {"type": "string", "required": True}},
    "tools": [],
    "response_format": None,
    "evals": [],
    "card": {"intended_use": "faq", "limitations": "-", "risks": "-"},
}


def test_a_label_move_invalidates_entries(gw: ThreadedGateway) -> None:
    key = gw.create_key()
    with gw.admin() as admin:
        assert admin.post("/admin/prompts", json=BUNDLE).status_code == 201
        v2 = {
            **BUNDLE,
            "messages": [BUNDLE["messages"][0], {"role": "user", "content": "Q: {{ question }}"}],
        }
        assert admin.post("/admin/prompts", json=v2).json()["version"] == 2
        assert admin.put("/admin/prompts/faq/labels/prod", json={"version": 1}).status_code == 200

        def faq(question: str) -> httpx.Response:
            return ask(
                gw,
                key,
                "",
                model="prompt:faq@prod",
                messages=None,
                prompt_variables={"question": question},
            )

        faq("How do I close my account?")
        assert faq("How can I close my account?").headers["x-pilothouse-cache"] == "semantic"
        assert admin.put("/admin/prompts/faq/labels/prod", json={"version": 2}).status_code == 200
        moved = faq("How can I close my account?")
        assert "x-pilothouse-cache" not in moved.headers
        assert moved.headers["x-pilothouse-prompt"] == "faq@2"
        assert answer(moved) == "Q: How can I close my account?"


def test_a_route_change_invalidates_both_tiers(tmp_path: Path) -> None:
    """After the alias moves to another model no tier serves the old model's answer."""
    cfg = base_config(
        f"sqlite:///{tmp_path}/ph.db", tmp_path, providers=PROVIDERS, models=models(), guards=GUARDS
    )
    path = write_config(tmp_path / "ph.yaml", cfg)
    gw = ThreadedGateway(load_settings(path)).start()
    try:
        key = gw.create_key()
        question, paraphrase = "How do I close my account?", "How can I close my account?"
        ask(gw, key, question)
        assert ask(gw, key, question).headers["x-pilothouse-cache"] == "hit"
        assert ask(gw, key, paraphrase).headers["x-pilothouse-cache"] == "semantic"
        moved = models()
        moved["chat"] = {**moved["chat"], "targets": [{"provider": "chaos", "model": "gpt-4o"}]}
        write_config(path, {**cfg, "models": moved})
        with gw.admin() as admin:
            assert admin.post("/admin/reload").status_code == 200
        fresh = ask(gw, key, question)  # was an exact hit on the old route
        assert "x-pilothouse-cache" not in fresh.headers
        assert fresh.headers["x-pilothouse-target"] == "chaos/gpt-4o"
        again = ask(gw, key, paraphrase)  # a hit again, but on the new route's entry
        assert again.headers["x-pilothouse-cache"] == "semantic"
        assert again.json()["model"] == "gpt-4o"
    finally:
        gw.stop()


def test_a_label_move_to_identical_text_is_another_entry(gw: ThreadedGateway) -> None:
    """The prompt version served is part of the exact key too, not only the rendered text."""
    key = gw.create_key()
    bundle = {**BUNDLE, "name": "same-text"}
    with gw.admin() as admin:
        assert admin.post("/admin/prompts", json=bundle).status_code == 201
        v2 = {**bundle, "description": "v2, same messages"}
        assert admin.post("/admin/prompts", json=v2).json()["version"] == 2
        label = "/admin/prompts/same-text/labels/prod"
        assert admin.put(label, json={"version": 1}).status_code == 200

        def ask_prompt() -> httpx.Response:
            return ask(
                gw,
                key,
                "",
                model="prompt:same-text@prod",
                messages=None,
                prompt_variables={"question": "How do I close my account?"},
            )

        ask_prompt()
        assert ask_prompt().headers["x-pilothouse-cache"] == "hit"
        assert admin.put(label, json={"version": 2}).status_code == 200
        moved = ask_prompt()
        assert "x-pilothouse-cache" not in moved.headers
        assert moved.headers["x-pilothouse-prompt"] == "same-text@2"


def test_embedder_must_serve_embeddings() -> None:
    bad = models()
    bad["claude"] = {"targets": [{"provider": "anthropic", "model": "claude-3-5-haiku"}]}
    bad["chat"]["cache"]["semantic"]["embedder"] = "claude"
    providers = {
        **PROVIDERS,
        "anthropic": {"type": "anthropic", "api_key": "env:PH_TEST_UPSTREAM_KEY"},
    }
    with pytest.raises(ConfigError, match=r"models\.chat\.cache\.semantic\.embedder.*serve"):
        parse_settings({"providers": providers, "models": bad, "guards": GUARDS}, source="<t>")
    bad["chat"]["cache"]["semantic"]["embedder"] = "nope"
    with pytest.raises(ConfigError, match="unknown model alias 'nope'"):
        parse_settings({"providers": PROVIDERS, "models": bad, "guards": GUARDS}, source="<t>")


def test_a_streamed_paraphrase_is_replayed_from_the_semantic_cache(gw: ThreadedGateway) -> None:
    key = gw.create_key()
    ask(gw, key, "How do I update my billing details?")
    with httpx.stream(
        "POST",
        gw.url + "/v1/chat/completions",
        json={
            "model": "chat",
            "stream": True,
            "messages": [{"role": "user", "content": "How can I update my billing details?"}],
        },
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    ) as resp:
        assert resp.headers["x-pilothouse-cache"] == "semantic"
        text = "".join(
            chunk["choices"][0]["delta"].get("content") or ""
            for line in resp.iter_lines()
            if line.startswith("data: {")
            for chunk in [json.loads(line.removeprefix("data: "))]
            if chunk.get("choices")
        )
    assert text == "How do I update my billing details?"
