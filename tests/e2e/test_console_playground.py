"""The playground, replay and users pages in a real browser: an answer streamed word by word
from the chaos provider, its trace and exact cost; a replay beside the stored answer; requests,
cost and feedback per user; and what a viewer may not do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from pilothouse.console.formatting import usd
from pilothouse.store.tables import usage_records
from tests.support.gateway import ThreadedGateway, base_config, running_gateway

from .conftest import shot
from .test_console_prompts import on_loop, sign_in

QUESTION = "how heavy is an adult walrus in kilograms"
OTHER_ANSWER = "A walrus weighs about a tonne"
GREETER = {
    "name": "greeter",
    "description": "Asks one question about a product.",
    "model": "chat",
    "params": {"max_tokens": 50},
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "About {{ product }}: {{ question }}"},
    ],
    "variables": {
        "product": {"type": "string", "default": "pilothouse"},
        "question": {"type": "string", "required": True, "max_length": 60},
    },
    "tools": [],
    "response_format": None,
    "evals": [],
    "card": {"intended_use": "tests", "limitations": "-", "risks": "-"},
}


def config(tmp_path: Path, capture: str = "full") -> dict[str, Any]:
    return base_config(
        f"sqlite:///{tmp_path}/p.db",
        tmp_path,
        telemetry={"capture_content": capture},
        providers={
            # One word per chunk, a quarter second apart: the page must show it arriving.
            "slow": {"type": "chaos", "chunk_delay_ms": 250},
            "other": {"type": "chaos", "reply": OTHER_ANSWER},
        },
        models={
            "chat": {"targets": [{"provider": "slow", "model": "gpt-4o-mini"}]},
            "other": {"targets": [{"provider": "other", "model": "gpt-4o"}]},
        },
    )


def chat(gw: ThreadedGateway, key: str, text: str, **meta: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if meta:
        headers["x-pilothouse-metadata"] = httpx.Request("GET", "/", json=meta).content.decode()
    resp = httpx.post(
        gw.url + "/v1/chat/completions",
        headers=headers,
        json={"model": "chat", "messages": [{"role": "user", "content": text}]},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return resp


async def _flushed_rows(gw: ThreadedGateway) -> list[dict[str, Any]]:
    rt = gw.runtime
    assert rt is not None
    await rt.ledger.flush()
    async with rt.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(usage_records))]


def gw_requests(gw: ThreadedGateway) -> list[dict[str, Any]]:
    """Every usage row in the store, once the gateway's queue is written."""
    rows: list[dict[str, Any]] = on_loop(gw, _flushed_rows(gw))
    return rows


def usage_row(gw: ThreadedGateway, request_id: str) -> dict[str, Any]:
    return next(r for r in gw_requests(gw) if r["request_id"] == request_id)


def key_id(gw: ThreadedGateway, name: str) -> str:
    with gw.admin() as admin:
        keys = admin.get("/admin/keys").json()["data"]
    return str(next(k["id"] for k in keys if k["name"] == name))


def send(page: Page, target: str, message: str = "", variables: str = "") -> None:
    page.get_by_label("Model alias or prompt version").fill(target)
    page.locator("#playground-message").fill(message)
    page.get_by_label("Prompt variables (JSON)").fill(variables)
    page.get_by_role("button", name="Send").click()


def test_playground_streams_the_answer_with_trace_and_cost(
    page: Page, browser: Browser, tmp_path: Path
) -> None:
    with running_gateway(config(tmp_path)) as gw:
        ada = gw.create_key(name="ada", role="admin")
        with gw.admin() as admin:
            assert admin.post("/admin/prompts", json=GREETER).status_code == 201
        sign_in(page, gw, ada, "/console/playground")
        expect(page.get_by_role("heading", name="Playground")).to_be_visible()

        send(page, "chat", QUESTION)
        # Words arrive while the request is still streaming, not all at once at the end.
        partial = page.wait_for_function(
            """() => {
                const state = document.getElementById('answer-state').dataset.state;
                const text = document.getElementById('answer').textContent;
                return state === 'streaming' && text.length > 0 ? text : null;
            }"""
        ).json_value()
        expect(page.locator("#answer-state")).to_have_text("Done.")
        assert page.locator("#answer").text_content() == QUESTION  # chaos echoes the question
        assert QUESTION.startswith(partial) and len(partial) < len(QUESTION), partial
        assert page.locator("#answer").get_attribute("data-chunks") == str(len(QUESTION.split()))
        result = page.locator("#answer-result")
        expect(result).to_be_visible()
        request_id = result.locator("[data-field=request]").text_content() or ""
        cost = result.locator("[data-field=cost]").text_content() or ""
        expect(result.locator("[data-field=served]")).to_have_text("chat")
        shot(page, "60-playground-streamed")

        # Recorded like any gateway request: ada's key, the same exact cost, a trace.
        row = usage_row(gw, request_id)
        assert row["key_id"] == key_id(gw, "ada")
        assert row["status"] == 200 and row["stream"] is True and row["cost_pico"] > 0
        assert row["metadata"] == {"source": "console.playground", "console_principal": "ada"}
        assert cost == usd(row["cost_pico"])
        result.locator("[data-field=trace]").click()
        expect(page.locator("#summary")).to_contain_text("ada")
        expect(page.locator("#cost")).to_have_text(cost)

        # A prompt version: rendered by the registry, answered by its alias.
        page.goto(gw.url + "/console/playground")
        send(page, "prompt:greeter@1", "", '{"question": "what is it"}')
        expect(page.locator("#answer-state")).to_have_text("Done.")
        expect(page.locator("#answer")).to_have_text("About pilothouse: what is it")
        expect(page.locator("#answer-result [data-field=served]")).to_have_text("greeter@1 on chat")

        # Bad input is a precise message; nothing streams.
        send(page, "prompt:greeter@1", "", "[1, 2]")
        expect(page.locator("#answer-state")).to_contain_text("Refused (400)")
        expect(page.locator("#answer-state")).to_contain_text("JSON object")
        send(page, "nosuch", "hi")
        expect(page.locator("#answer-state")).to_contain_text("Refused (404)")

        # A forged POST (no CSRF token) is refused and sends nothing.
        before = len(gw_requests(gw))
        forged = page.request.post(gw.url + "/console/playground/run", form={"target": "chat"})
        assert forged.status == 403
        assert len(gw_requests(gw)) == before


def test_playground_applies_the_keys_models_and_budget(
    page: Page, browser: Browser, tmp_path: Path
) -> None:
    with running_gateway(config(tmp_path)) as gw:
        otto = gw.create_key(name="otto", role="operator", models=["other"])
        sign_in(page, gw, otto, "/console/playground")
        options = page.locator("#playground-form-targets option")
        assert [o.get_attribute("value") for o in options.all()] == ["other"]
        send(page, "chat", "hello")
        expect(page.locator("#answer-state")).to_contain_text("Refused (403)")
        expect(page.locator("#answer-state")).to_contain_text("may not use model `chat`")
        send(page, "other", "hello")
        expect(page.locator("#answer")).to_have_text(OTHER_ANSWER)
        expect(page.locator("#answer-state")).to_have_text("Done.")

        # A budget smaller than one request's worst case refuses it (429), as on /v1.
        penny = gw.create_key(name="penny", role="operator", budget_usd="0.000000001")
        poor = browser.new_context().new_page()
        sign_in(poor, gw, penny, "/console/playground")
        send(poor, "chat", "hello")
        expect(poor.locator("#answer-state")).to_contain_text("Refused (429)")
        shot(poor, "61-playground-over-budget")
        poor.context.close()


def test_replay_puts_the_new_answer_beside_the_stored_one(
    page: Page, browser: Browser, tmp_path: Path
) -> None:
    with running_gateway(config(tmp_path)) as gw:
        ada = gw.create_key(name="ada", role="admin")
        app = gw.create_key(name="app")
        request_id = chat(gw, app, QUESTION).headers["x-request-id"]
        sign_in(page, gw, ada, f"/console/requests/{request_id}")
        page.get_by_role("link", name="Replay this request").click()
        expect(page.locator("#original-text")).to_have_text(QUESTION)
        target = page.get_by_label("Model alias or prompt version")
        expect(target).to_have_value("chat")  # the original alias, preselected
        target.fill("other")
        page.get_by_role("button", name="Replay").click()
        expect(page.locator("#replay-answer-state")).to_have_text("Done.")
        expect(page.locator("#replay-answer")).to_have_text(OTHER_ANSWER)
        left = page.locator("#original").bounding_box()
        right = page.locator("#replay-answer").bounding_box()
        assert left and right and right["x"] > left["x"] + left["width"] - 1  # side by side
        shot(page, "62-replay-side-by-side")
        new_id = page.locator("#replay-answer-result [data-field=request]").text_content() or ""
        row = usage_row(gw, new_id)
        assert row["alias"] == "other" and row["metadata"]["replay_of"] == request_id


def test_replay_is_disabled_without_captured_content(page: Page, tmp_path: Path) -> None:
    with running_gateway(config(tmp_path, capture="none")) as gw:
        ada = gw.create_key(name="ada", role="admin")
        app = gw.create_key(name="app")
        request_id = chat(gw, app, QUESTION).headers["x-request-id"]
        sign_in(page, gw, ada, f"/console/requests/{request_id}/replay")
        expect(page.locator("#replay-unavailable")).to_contain_text("not captured")
        expect(page.get_by_role("button", name="Replay")).to_be_disabled()
        shot(page, "63-replay-unavailable")
        token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
        refused = page.request.post(
            gw.url + "/console/playground/run",
            form={"csrf_token": token, "target": "chat", "replay_of": request_id},
        )
        assert refused.status == 400 and "not captured" in refused.text()


def test_users_page_and_what_a_viewer_may_not_do(
    page: Page, browser: Browser, tmp_path: Path
) -> None:
    with running_gateway(config(tmp_path)) as gw:
        ada = gw.create_key(name="ada", role="admin")
        vera = gw.create_key(name="vera", role="viewer")
        app = gw.create_key(name="app")
        with gw.admin() as admin:
            carol = admin.post("/admin/users", json={"name": "carol"}).json()
        carols_key = gw.create_key(name="carols-app", user_id=carol["id"])
        first = chat(gw, app, "one two", user="alice@example.com").headers["x-request-id"]
        chat(gw, app, "three four five", user="alice@example.com")
        chat(gw, app, "six", user="bob")
        chat(gw, carols_key, "seven eight")
        chat(gw, app, "nobody's")  # no user: not on the page
        feedback = {"request_id": first, "success": True, "score": 4}
        resp = httpx.post(
            gw.url + "/v1/feedback", headers={"Authorization": f"Bearer {app}"},
            json=feedback, timeout=30,
        )  # fmt: skip
        assert resp.status_code in (200, 201), resp.text

        sign_in(page, gw, ada, "/console/users")
        rows = page.locator("#user-list tbody tr")
        expect(rows).to_have_count(3)
        alice = rows.filter(has_text="alice@example.com")
        cells = alice.locator("td")
        expect(cells.nth(1)).to_have_text("2")
        expect(cells.nth(4)).to_have_text("1")
        expect(cells.nth(5)).to_have_text("1 / 0")
        expect(cells.nth(6)).to_have_text("4.00")
        expect(rows.filter(has_text="carol")).to_contain_text(carol["id"])
        # The heading's total is the exact sum of the four requests that have a user.
        users = [r for r in gw_requests(gw) if r["user_id"] or (r["metadata"] or {}).get("user")]
        assert len(users) == 4
        total = usd(sum(r["cost_pico"] for r in users))
        expect(page.locator("#users-title")).to_contain_text(total)
        shot(page, "64-users")
        alice.get_by_role("link").click()
        expect(page.locator("table.data tbody tr")).to_have_count(2)
        page.goto(gw.url + "/console/users")
        rows.filter(has_text="carol").get_by_role("link").click()
        expect(page.locator("table.data tbody tr")).to_have_count(1)

        # vera (viewer): reads the users page, but no playground, no replay, no spending.
        viewer = browser.new_context().new_page()
        sign_in(viewer, gw, vera, "/console/users")
        expect(viewer.locator("#user-list tbody tr")).to_have_count(3)
        viewer.goto(gw.url + f"/console/requests/{first}")
        expect(viewer.locator("#summary")).to_be_visible()
        expect(viewer.get_by_role("link", name="Replay this request")).to_have_count(0)
        for path in ("/console/playground", f"/console/requests/{first}/replay"):
            opened = viewer.goto(gw.url + path)
            assert opened is not None and opened.status == 403, path
            assert "one two" not in viewer.content()
        shot(viewer, "65-viewer-playground-refused")
        token = viewer.locator("input[name=csrf_token]").first.get_attribute("value") or ""
        before = len(gw_requests(gw))
        refused = viewer.request.post(
            gw.url + "/console/playground/run",
            form={"csrf_token": token, "target": "chat", "message": "spend"},
        )
        assert refused.status == 403
        assert len(gw_requests(gw)) == before
        viewer.context.close()


def test_replay_against_another_prompt_version_renders_that_version(
    page: Page, tmp_path: Path
) -> None:
    v2 = {**GREETER, "messages": [{"role": "user", "content": "Q: {{ question }}"}]}
    with running_gateway(config(tmp_path)) as gw:
        ada = gw.create_key(name="ada", role="admin")
        app = gw.create_key(name="app")
        with gw.admin() as admin:
            assert admin.post("/admin/prompts", json=GREETER).status_code == 201
            assert admin.post("/admin/prompts", json=v2).status_code == 201
        served = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {app}"},
            json={"model": "prompt:greeter@1", "prompt_variables": {"question": "what is it"}},
            timeout=30,
        )
        assert served.status_code == 200, served.text
        request_id = served.headers["x-request-id"]
        sign_in(page, gw, ada, f"/console/requests/{request_id}/replay")
        expect(page.locator("#original-text")).to_have_text("About pilothouse: what is it")
        target = page.get_by_label("Model alias or prompt version")
        expect(target).to_have_value("prompt:greeter@1")
        target.fill("prompt:greeter@2")
        page.get_by_label("Prompt variables (JSON)").fill('{"question": "what is it"}')
        page.get_by_role("button", name="Replay").click()
        expect(page.locator("#replay-answer-state")).to_have_text("Done.")
        # v2's own template, not v1's rendered turns sent again after it.
        expect(page.locator("#replay-answer")).to_have_text("Q: what is it")
        served_by = page.locator("#replay-answer-result [data-field=served]")
        expect(served_by).to_have_text("greeter@2 on chat")
        shot(page, "66-replay-prompt-version")
