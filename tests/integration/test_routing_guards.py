"""Guards follow the alias the client asked for, and a flagged cheap answer escalates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import base_config, running_gateway
from tests.support.ledger import usage_rows

pytestmark = pytest.mark.integration
SECRET = "sk-proj-" + "Zq8" * 12
GUARDS = {
    "strict": {
        "input": [{"type": "secrets", "action": "block"}],
        "output": [{"type": "secrets", "action": "redact"}],
    }
}


def post(gw: Any, key: str, text: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": text}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_rules_alias_guards_apply_to_the_alias_it_routes_to(tmp_path: Path) -> None:
    models = {
        "chat": {
            "guards": "strict",
            "routing": {"strategy": "rules", "rules": [{"use": "open"}], "default": "open"},
        },
        "open": {"targets": [{"provider": "chaos", "model": "m"}]},  # no guards of its own
    }
    cfg = base_config(f"sqlite:///{tmp_path}/ph.db", tmp_path, models=models, guards=GUARDS)
    with running_gateway(cfg) as gw:
        key = gw.create_key()
        blocked = post(gw, key, f"is {SECRET} valid?")
        assert blocked.status_code == 400 and blocked.json()["error"]["code"] == "guard_blocked"
        assert gw.runtime is not None and gw.runtime.providers["chaos"].calls == 0  # type: ignore[attr-defined]
        assert post(gw, key, "hello").status_code == 200


def test_a_guard_flagged_cheap_answer_escalates(tmp_path: Path) -> None:
    providers = {
        "cheap": {"type": "chaos", "reply": f"use the key {SECRET} for that"},
        "strong": {"type": "chaos", "reply": "ask your administrator for a key"},
    }
    models = {
        "chat": {
            "guards": "strict",
            "routing": {"strategy": "cascade", "cascade": {"steps": ["chat-cheap", "chat-strong"]}},
        },
        "chat-cheap": {"targets": [{"provider": "cheap", "model": "small"}]},
        "chat-strong": {"targets": [{"provider": "strong", "model": "large"}]},
    }
    cfg = base_config(
        f"sqlite:///{tmp_path}/ph.db", tmp_path, providers=providers, models=models, guards=GUARDS
    )
    with running_gateway(cfg) as gw:
        resp = post(gw, gw.create_key(), "how do I get an API key?")
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"] == "ask your administrator for a key"
        assert resp.headers["x-pilothouse-target"] == "strong/large"
        [row] = usage_rows(gw, request_id=resp.headers["x-request-id"])
        assert [(s["alias"], s.get("failed")) for s in row["route_steps"]] == [
            ("chat-cheap", "guard"),
            ("chat-strong", None),
        ]
