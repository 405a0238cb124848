"""The prompt pages in a real browser: find a prompt, diff two versions, read a label's
history, approve (four eyes, CSRF, roles) and promote, then see the lineage of an answer."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.integration.test_prompts import BUNDLE, RELEASES
from tests.support.gateway import ThreadedGateway, base_config, running_gateway

from .conftest import shot


def as_principal(gw: ThreadedGateway, key: str) -> httpx.Client:
    client = gw.admin()
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def sign_in(page: Page, gw: ThreadedGateway, key: str, path: str = "/console/prompts") -> None:
    page.goto(gw.url + path)
    page.get_by_label("Admin key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def on_loop(gw: ThreadedGateway, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, gw.server_loop()).result(timeout=30)


def test_prompt_release_workflow_in_the_console(
    page: Page, browser: Browser, tmp_path: Path
) -> None:
    config = base_config(f"sqlite:///{tmp_path}/c.db", tmp_path, releases=RELEASES)
    with running_gateway(config) as gw:
        keys = {
            who: gw.create_key(name=who, role=role)
            for who, role in (("alice", "operator"), ("bob", "operator"), ("vera", "viewer"))
        }
        app = gw.create_key(name="app")
        alice = as_principal(gw, keys["alice"])
        assert alice.post("/admin/prompts", json={**BUNDLE, "reason": "first cut"}).is_success
        terse = [{"role": "system", "content": "Answer tersely about {{ product }}."}]
        v2 = {**BUNDLE, "messages": terse + BUNDLE["messages"][1:], "reason": "terser"}
        assert alice.post("/admin/prompts", json=v2).status_code == 201
        path = "/admin/prompts/support-answer/labels/"
        assert alice.put(path + "dev", json={"version": 1, "reason": "try v1"}).is_success
        assert alice.put(path + "dev", json={"version": 2, "reason": "try terse"}).is_success
        assert gw.runtime is not None
        registry = gw.runtime.prompts
        version2 = on_loop(gw, registry.version("support-answer", 2))
        on_loop(
            gw,
            registry.record_evidence(
                version2, run_id="run_e2e_pass", suite=BUNDLE["evals"][0], passed=True, gates=[]
            ),
        )
        assert alice.put(path + "staging", json={"version": 2, "reason": "evals pass"}).is_success

        # bob finds the prompt and compares its two versions side by side.
        sign_in(page, gw, keys["bob"])
        expect(page.get_by_role("heading", name="Prompts")).to_be_visible()
        page.get_by_label("Find a prompt").fill("support")
        page.get_by_role("button", name="Find").click()
        expect(page.locator("#prompt-list tbody tr")).to_have_count(1)
        expect(page.locator("#prompt-list")).to_contain_text("dev → v2")
        page.get_by_role("link", name="support-answer").click()
        page.get_by_label("From").select_option("1")
        page.get_by_label("To").select_option("2")
        page.get_by_role("button", name="Show diff").click()
        expect(page.get_by_role("heading", name="Diff v1 → v2")).to_be_visible()
        changed = page.locator("#diff tr.diff-replace")
        expect(changed).to_have_count(1)
        expect(changed.locator("td.diff-left")).to_contain_text("briefly")
        expect(changed.locator("td.diff-right")).to_contain_text("Answer tersely")
        expect(page.locator("#diff-summary")).to_contain_text("1 changed line")
        shot(page, "20-prompt-diff")

        # The label's whole history: who moved it, when, from what to what, and why.
        page.get_by_role("link", name="support-answer").click()
        page.get_by_role("link", name="dev history").click()
        rows = page.locator("#label-history tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("v1 → v2")
        expect(rows.nth(0)).to_contain_text("alice")
        expect(rows.nth(0)).to_contain_text("try terse")
        expect(rows.nth(1)).to_contain_text("none → v1")
        page.goto(gw.url + "/console/prompts/support-answer/labels/staging")
        expect(page.locator("#label-history")).to_contain_text("run_e2e_pass")
        shot(page, "21-label-history")

        # bob approves v2 for prod; the page shows the approval and what is still missing.
        page.goto(gw.url + "/console/prompts/support-answer/versions/2")
        expect(page.locator("#policies")).to_contain_text("approval: 0 of 1")
        page.get_by_label("Approve for label").select_option("prod")
        page.get_by_label("Reason", exact=True).first.fill("read the diff")
        page.get_by_role("button", name="Approve v2").click()
        expect(page.get_by_role("status")).to_have_text("Your approval for prod is recorded.")
        prod_row = page.locator("#policies tbody tr", has_text="prod")
        expect(prod_row).to_contain_text("bob: read the diff")
        shot(page, "22-approved")
        with gw.admin() as admin:
            audit = admin.get("/admin/audit", params={"action": "prompt.approve"}).json()["data"]
        assert [(r["actor"], r["target"]) for r in audit] == [("bob", "support-answer@2")]

        # Hostile or stale addresses are precise 4xx pages, never a 500.
        for url, status in (
            ("/console/prompts/nope", 404),
            ("/console/prompts/support-answer/diff?a=1&b=99", 404),
            ("/console/prompts/support-answer/diff?a=&b=%00", 404),
            ("/console/prompts/support-answer/versions/abc", 404),
            ("/console/prompts/support-answer/labels/" + "x" * 300, 404),
            ("/console/prompts?q=%27%3B--" + "y" * 500, 200),
            ("/console/evals/run_nope", 404),
            ("/console/evals/compare?a=run_x&b=run_y", 404),
        ):
            assert page.request.get(gw.url + url).status == status, url

        token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
        form_url = gw.url + "/console/prompts/support-answer/versions/1/"
        bad_label = page.request.post(form_url + "approve", form={"csrf_token": token})
        assert bad_label.status == 400 and "label" in bad_label.text()
        unmet = page.request.post(form_url + "promote", form={"csrf_token": token, "label": "prod"})
        assert unmet.status == 409 and "evals: no passing run" in unmet.text()
        assert on_loop(gw, registry.label_version("support-answer", "prod")) is None

        # A form without its CSRF token changes nothing.
        forged = page.request.post(
            gw.url + "/console/prompts/support-answer/versions/2/approve",
            form={"label": "prod", "reason": "forged"},
        )
        assert forged.status == 403
        assert len(on_loop(gw, registry.approvals("support-answer", 2, "prod"))) == 1

        # alice pushed v2: the console refuses her approval (four eyes), then she promotes it.
        with_alice = browser.new_context().new_page()
        sign_in(with_alice, gw, keys["alice"], "/console/prompts/support-answer/versions/2")
        with_alice.get_by_label("Approve for label").select_option("prod")
        with_alice.get_by_role("button", name="Approve v2").click()
        expect(with_alice.get_by_role("alert")).to_contain_text("four eyes")
        with_alice.get_by_label("Move label").fill("prod")
        with_alice.locator("#promote-reason").fill("ship terse")
        with_alice.get_by_role("button", name="Promote v2").click()
        expect(with_alice).to_have_url(re.compile(r"/labels/prod$"))
        expect(with_alice.locator("#label-now")).to_contain_text("Serves v2")
        expect(with_alice.locator("#label-history tbody tr").first).to_contain_text("ship terse")
        with_alice.context.close()

        # A viewer reads the pages but has no approve form, and a forged POST is refused.
        viewer = browser.new_context().new_page()
        sign_in(viewer, gw, keys["vera"], "/console/prompts/support-answer/versions/2")
        expect(viewer.locator("#card")).to_contain_text("support")
        expect(viewer.locator("#approve-form")).to_have_count(0)
        expect(viewer.locator("#promote-form")).to_have_count(0)
        token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
        refused = viewer.request.post(
            gw.url + "/console/prompts/support-answer/versions/1/approve",
            form={"csrf_token": token or "", "label": "prod"},
        )
        assert refused.status == 403
        assert on_loop(gw, registry.approvals("support-answer", 1, "prod")) == []
        # The answer's lineage on its request page (a viewer may read request pages).
        served = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {app}"},
            json={"model": "prompt:support-answer@prod", "prompt_variables": {"question": "q?"}},
            timeout=30,
        )
        assert served.headers["x-pilothouse-prompt"] == "support-answer@2"
        request_id = served.headers["x-request-id"]
        viewer.goto(f"{gw.url}/console/requests/{request_id}")
        lineage = viewer.locator("#lineage")
        expect(lineage).to_contain_text("support-answer v2 via prod")
        expect(lineage).to_contain_text(gw.runtime.route_version[:16])
        expect(lineage).to_contain_text("alice")  # pushed it
        expect(viewer.locator("#lineage-promotion")).to_contain_text("prod: none → v2 by alice")
        expect(lineage).to_contain_text("run_e2e_pass")
        shot(viewer, "23-lineage")
        viewer.goto(f"{gw.url}/console/usage?by=prompt")
        expect(viewer.locator("#groups-prompt")).to_contain_text("support-answer@2")

        viewer.context.close()
        alice.close()
