"""The prompt registry end to end: push, serve by label/version, gates, lineage, audit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import ThreadedGateway, base_config, running_gateway

pytestmark = pytest.mark.integration

BUNDLE: dict[str, Any] = {
    "name": "support-answer",
    "description": "Answers customer questions from the handbook.",
    "model": "chat",
    "params": {"temperature": 0.2, "max_tokens": 300},
    "messages": [
        {"role": "system", "content": "You answer questions about {{ product }} briefly."},
        {"role": "user", "content": "About {{ product }}: {{ question }}"},
    ],
    "variables": {
        "product": {"type": "string", "default": "pilothouse"},
        "question": {"type": "string", "required": True, "max_length": 40},
    },
    "tools": [],
    "response_format": None,
    "evals": ["examples/evals/support-qa/suite.yaml"],
    "card": {"intended_use": "support", "limitations": "-", "risks": "-"},
}
RELEASES = {
    "labels": {
        "staging": {"requires": ["evals"]},
        "prod": {"requires": ["evals", "staging", "approval"], "approvals": 1},
    }
}


def chat(gw: ThreadedGateway, key: str, **body: Any) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json=body,
        timeout=30,
    )


def reply(resp: httpx.Response) -> str:
    assert resp.status_code == 200, resp.text
    return str(resp.json()["choices"][0]["message"]["content"])


def principal(gw: ThreadedGateway, name: str, role: str = "operator") -> httpx.Client:
    client = gw.admin()
    client.headers["Authorization"] = f"Bearer {gw.create_key(name=name, role=role)}"
    return client


def test_push_is_content_addressed(store_url: str, tmp_path: Path) -> None:
    with running_gateway(base_config(store_url, tmp_path)) as gw, gw.admin() as admin:
        first = admin.post("/admin/prompts", json={**BUNDLE, "reason": "first cut"})
        assert first.status_code == 201, first.text
        assert first.json()["version"] == 1 and first.json()["created"] is True
        same = admin.post("/admin/prompts", json={**BUNDLE, "reason": "again"})
        assert same.status_code == 200
        assert same.json() == {**first.json(), "created": False}
        changed = {**BUNDLE, "params": {"temperature": 0.5, "max_tokens": 300}}
        second = admin.post("/admin/prompts", json={**changed, "reason": "warmer"})
        assert second.status_code == 201 and second.json()["version"] == 2
        assert second.json()["hash"] != first.json()["hash"]
        shown = admin.get("/admin/prompts/support-answer/versions/2").json()
        assert shown["author"] == "bootstrap" and shown["reason"] == "warmer"
        assert shown["parent"] == 1 and shown["params"]["temperature"] == 0.5
        listed = admin.get("/admin/prompts").json()["data"]
        assert listed == [{"name": "support-answer", "latest_version": 2, "labels": {}}]
        bad = admin.post("/admin/prompts", json={**BUNDLE, "messages": "nope"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"
        undeclared = {
            **BUNDLE,
            "messages": [{"role": "user", "content": "{{ nobody }}"}],
        }
        refused = admin.post("/admin/prompts", json=undeclared)
        assert refused.status_code == 400 and "nobody" in refused.json()["error"]["message"]
        unknown = admin.post("/admin/prompts", json={**BUNDLE, "colour": "red"})
        assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "colour"


def test_serving_by_label_and_version(store_url: str, tmp_path: Path) -> None:
    with running_gateway(base_config(store_url, tmp_path)) as gw, gw.admin() as admin:
        key = gw.create_key(name="app")
        assert admin.post("/admin/prompts", json=BUNDLE).status_code == 201
        short = {**BUNDLE, "params": {"max_tokens": 3}}
        assert admin.post("/admin/prompts", json=short).json()["version"] == 2
        moved = admin.put(
            "/admin/prompts/support-answer/labels/dev", json={"version": 1, "reason": "try"}
        )
        assert moved.status_code == 200
        assert moved.json()["version"] == 1 and moved.json()["previous"] is None

        served = chat(
            gw, key, model="prompt:support-answer@dev", prompt_variables={"question": "why?"}
        )
        # The chaos upstream echoes the last user message: the rendered template.
        assert reply(served) == "About pilothouse: why?"
        assert served.headers["x-pilothouse-prompt"] == "support-answer@1"
        by_version = chat(
            gw,
            key,
            model="prompt:support-answer@2",
            prompt_variables={"question": "one two three four", "product": "acme"},
        )
        assert reply(by_version) == "About acme: one"  # the version's max_tokens: 3 applied
        assert by_version.headers["x-pilothouse-prompt"] == "support-answer@2"
        overridden = chat(
            gw,
            key,
            model="prompt:support-answer@2",
            prompt_variables={"question": "one two three four"},
            max_tokens=50,
        )
        assert reply(overridden) == "About pilothouse: one two three four"
        appended = chat(
            gw,
            key,
            model="prompt:support-answer@dev",
            prompt_variables={"question": "q"},
            messages=[{"role": "user", "content": "follow-up please"}],
        )
        assert reply(appended) == "follow-up please"

        # The label moves: the very next request is served by the new version.
        admin.put("/admin/prompts/support-answer/labels/dev", json={"version": 2})
        now = chat(gw, key, model="prompt:support-answer@dev", prompt_variables={"question": "x"})
        assert now.headers["x-pilothouse-prompt"] == "support-answer@2"
        assert admin.delete("/admin/prompts/support-answer/labels/dev").status_code == 200
        gone = chat(gw, key, model="prompt:support-answer@dev", prompt_variables={"question": "x"})
        assert gone.status_code == 404
        history = admin.get("/admin/prompts/support-answer/labels/dev/history").json()["data"]
        assert [(h["from"], h["to"]) for h in history] == [(None, 1), (1, 2), (2, None)]

        usage = admin.get("/admin/traces/" + by_version.headers["x-request-id"]).json()
        assert usage["prompt_name"] == "support-answer" and usage["prompt_version"] == "2"
        assert usage["prompt_hash"] is not None and usage["prompt_label"] is None
        record = usage["usage"]
        assert record["prompt_version"] == 2 and record["prompt_hash"] is not None
        assert record["prompt_label"] is None
        labelled = admin.get("/admin/traces/" + served.headers["x-request-id"]).json()
        assert labelled["usage"]["prompt_label"] == "dev"
        assert labelled["prompt_label"] == "dev"
        assert labelled["prompt_hash"] == labelled["usage"]["prompt_hash"]
        over = admin.get("/admin/traces/" + overridden.headers["x-request-id"]).json()
        assert over["usage"]["metadata"]["prompt_overrides"] == {"max_tokens": 50}
        # Cost and tokens per prompt version: v1 served two requests (via dev), v2 three.
        report = admin.get("/admin/reports/costs", params={"by": "prompt"}).json()["data"]
        counts = {row["prompt"]: row["requests"] for row in report if row["prompt"]}
        assert counts == {"support-answer@1": 2, "support-answer@2": 3}
        # … and latency per prompt version, from the same ledger.
        for row in report:
            if row["prompt"]:
                assert 0 < row["latency_ms_avg"] <= row["latency_ms_max"], row


@pytest.mark.parametrize(
    ("variables", "param"),
    [
        ({}, "prompt_variables.question"),
        ({"question": 42}, "prompt_variables.question"),
        ({"question": "x" * 41}, "prompt_variables.question"),
        ({"question": "ok", "extra": "?"}, "prompt_variables.extra"),
    ],
)
def test_bad_variables_are_a_400_naming_them(
    tmp_path: Path, variables: dict[str, Any], param: str
) -> None:
    with running_gateway(base_config("sqlite:///" + str(tmp_path / "v.db"), tmp_path)) as gw:
        key = gw.create_key(name="app")
        with gw.admin() as admin:
            admin.post("/admin/prompts", json=BUNDLE)
            rendered = admin.post(
                "/admin/prompts/support-answer/render",
                json={"ref": "1", "variables": variables},
            )
        assert rendered.status_code == 400 and rendered.json()["error"]["param"] == param
        served = chat(gw, key, model="prompt:support-answer@1", prompt_variables=variables)
        assert served.status_code == 400 and served.json()["error"]["param"] == param


def test_sandbox_escapes_are_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # Written-out attribute tricks: refused at push, so never stored.
    static = [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ product.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}",
        "{{ product['__class__'] }}",
        "{{ product|attr('__class__') }}",
    ]
    with running_gateway(base_config("sqlite:///" + str(tmp_path / "s.db"), tmp_path)) as gw:
        key = gw.create_key(name="app")
        with gw.admin() as admin:
            for i, attack in enumerate(static):
                bundle = {
                    **BUNDLE,
                    "name": f"evil-{i}",
                    "messages": [{"role": "user", "content": attack}],
                }
                pushed = admin.post("/admin/prompts", json=bundle)
                assert pushed.status_code == 400, (attack, pushed.text)
                error = pushed.json()["error"]
                assert error["code"] == "unsafe_template"
                assert error["param"] == "messages[0].content"
                assert admin.get(f"/admin/prompts/evil-{i}").status_code == 404
            # The attribute name arrives as a variable: only the render-time sandbox sees it.
            dynamic = [{"role": "user", "content": "{{ product|attr(question) }}"}]
            runtime = {**BUNDLE, "name": "evil-dyn", "messages": dynamic}
            assert admin.post("/admin/prompts", json=runtime).status_code == 201
            served = chat(
                gw, key, model="prompt:evil-dyn@1", prompt_variables={"question": "__class__"}
            )
            assert served.status_code == 400, served.text
            assert served.json()["error"]["code"] == "unsafe_template"
            # Memory bombs: refused by the bounded `*` and `**`, not allocated.
            for i, bomb in enumerate(("{{ product * 1000000000 }}", "{{ 10 ** 100000000 }}")):
                bundle = {
                    **BUNDLE,
                    "name": f"bomb-{i}",
                    "messages": [{"role": "user", "content": bomb}],
                }
                assert admin.post("/admin/prompts", json=bundle).status_code == 201
                served = chat(
                    gw, key, model=f"prompt:bomb-{i}@1", prompt_variables={"question": "q"}
                )
                assert served.status_code == 400, served.text
                assert served.json()["error"]["code"] == "unsafe_template"
    assert not marker.exists()


def test_protected_labels_gates_approval_force_and_lineage(store_url: str, tmp_path: Path) -> None:
    config = base_config(store_url, tmp_path, releases=RELEASES)
    with running_gateway(config) as gw:
        key = gw.create_key(name="app")
        alice, bob = principal(gw, "alice"), principal(gw, "bob")
        assert alice.post("/admin/prompts", json={**BUNDLE, "reason": "v1"}).status_code == 201
        path = "/admin/prompts/support-answer/labels/"
        refused = alice.put(path + "staging", json={"version": 1, "reason": "ship"})
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "gate_not_met" and error["missing"][0].startswith("evals")
        assert gw.runtime is not None
        registry = gw.runtime.prompts
        loop = gw.server_loop()

        import asyncio

        def run(coro: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

        v1 = run(registry.version("support-answer", 1))
        run(
            registry.record_evidence(
                v1, run_id="run_pass", suite=BUNDLE["evals"][0], passed=True, gates=[]
            )
        )
        staged = alice.put(path + "staging", json={"version": 1, "reason": "evals pass"})
        assert staged.status_code == 200, staged.text
        to_prod = alice.put(path + "prod", json={"version": 1, "reason": "go"})
        assert to_prod.status_code == 409
        assert any(m.startswith("approval") for m in to_prod.json()["error"]["missing"])
        self_approve = alice.post(
            "/admin/prompts/support-answer/versions/1/approve", json={"label": "prod"}
        )
        assert self_approve.status_code == 400  # alice pushed it: four eyes
        approved = bob.post(
            "/admin/prompts/support-answer/versions/1/approve",
            json={"label": "prod", "reason": "reviewed"},
        )
        assert approved.status_code == 201
        # bob approved, so bob may not also be the promoter that satisfies the policy.
        by_bob = bob.put(path + "prod", json={"version": 1, "reason": "go"})
        assert by_bob.status_code == 409
        shipped = alice.put(path + "prod", json={"version": 1, "reason": "go"})
        assert shipped.status_code == 200, shipped.text

        # A version without evidence can only be forced, and the force is on record.
        alice.post("/admin/prompts", json={**BUNDLE, "description": "v2", "reason": "v2"})
        no_reason = alice.put(path + "prod", json={"version": 2, "force": True})
        assert no_reason.status_code == 400
        forced = alice.put(path + "prod", json={"version": 2, "force": True, "reason": "hotfix"})
        assert forced.status_code == 200 and forced.json()["previous"] == 1
        served = chat(
            gw, key, model="prompt:support-answer@prod", prompt_variables={"question": "q"}
        )
        assert served.headers["x-pilothouse-prompt"] == "support-answer@2"
        with gw.admin() as admin:
            lineage = admin.get("/admin/lineage/" + served.headers["x-request-id"])
            assert lineage.status_code == 200, lineage.text
            got = lineage.json()
            assert got["key"]["name"] == "app" and got["alias"] == "chat"
            assert got["route_version"] == gw.runtime.route_version
            assert got["prompt"]["name"] == "support-answer" and got["prompt"]["version"] == 2
            assert got["prompt"]["label"] == "prod" and got["prompt"]["author"] == "alice"
            assert got["prompt"]["reason"] == "v2"
            assert got["promotion"]["who"] == "alice" and got["promotion"]["forced"] is True
            assert got["promotion"]["why"] == "hotfix"
            assert got["forced"] is True
            history = admin.get(path + "prod/history").json()["data"]
            assert [h["forced"] for h in history] == [False, True]
            assert history[0]["evidence"][0]["run_id"] == "run_pass"
            audit = admin.get("/admin/audit", params={"action": "label.move"}).json()["data"]
            assert [r["details"]["forced"] for r in audit] == [False, False, True]
            first = admin.get("/admin/lineage/" + served.headers["x-request-id"].replace("q", "x"))
            assert first.status_code == 404
        alice.close()
        bob.close()
