"""Annotation from the request page in a real browser: thumbs, a 1-5 score and a comment stored
as feedback, "send to review queue", each audited; a viewer sees neither content nor forms."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.support.gateway import base_config, running_gateway

from .conftest import shot
from .test_console_prompts import sign_in

QUESTION = "How heavy is an adult walrus?"


def test_annotate_a_request_from_its_page(page: Page, browser: Browser, tmp_path: Path) -> None:
    config = base_config(
        f"sqlite:///{tmp_path}/a.db", tmp_path, telemetry={"capture_content": "full"}
    )
    with running_gateway(config) as gw:
        ada = gw.create_key(name="ada", role="admin")
        vera = gw.create_key(name="vera", role="viewer")
        app = gw.create_key(name="app")
        served = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {app}"},
            json={"model": "chat", "messages": [{"role": "user", "content": QUESTION}]},
            timeout=30,
        )
        assert served.status_code == 200, served.text
        request_id = served.headers["x-request-id"]
        url = f"/console/requests/{request_id}"

        sign_in(page, gw, ada, url)
        expect(page.locator("#annotate")).to_be_visible()
        page.get_by_label("Thumbs").select_option("down")
        page.get_by_label("Score (1-5)").select_option("2")
        page.get_by_label("Comment").fill("wrong unit <b>kg</b>")
        page.get_by_role("button", name="Save feedback").click()
        expect(page.get_by_role("status")).to_have_text("Your feedback is saved.")
        row = page.locator("#feedback tbody tr").first
        expect(row).to_contain_text("failure")
        expect(row).to_contain_text("2")
        expect(row).to_contain_text("wrong unit <b>kg</b>")  # shown as text, never as markup
        shot(page, "40-annotated")

        # The stored record is the API's feedback, under ada's name.
        with gw.admin() as admin:
            report = admin.get("/admin/audit", params={"action": "request.annotate"}).json()
        assert [(r["actor"], r["target"]) for r in report["data"]] == [("ada", request_id)]

        # Out-of-range scores are a precise 400 and store nothing.
        token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
        bad = page.request.post(
            gw.url + url + "/feedback", form={"csrf_token": token, "score": "9"}
        )
        assert bad.status == 400 and "1 to 5" in bad.text()
        empty = page.request.post(gw.url + url + "/feedback", form={"csrf_token": token})
        assert empty.status == 400
        expect(page.locator("#feedback tbody tr")).to_have_count(1)
        page.reload()
        expect(page.locator("#feedback tbody tr")).to_have_count(1)

        # Send it to the review queue; it is there with its conversation, once.
        page.get_by_label("Why review it").fill("unit confusion")
        page.get_by_role("button", name="Send to review queue").click()
        expect(page.get_by_role("status")).to_have_text("Sent to the review queue.")
        page.get_by_role("button", name="Send to review queue").click()
        expect(page.get_by_role("status")).to_contain_text("already in the review queue")
        page.get_by_role("link", name="review page").click()
        items = page.locator(".review-item")
        expect(items).to_have_count(1)
        expect(items.first).to_contain_text(request_id)
        expect(items.first).to_contain_text(QUESTION)
        expect(items.first).to_contain_text("unit confusion")
        expect(items.first).to_contain_text("Sent by")
        shot(page, "41-sent-to-review")
        # Its link goes back to the request (there is no eval run called "console").
        back = items.first.get_by_role("link", name=request_id)
        assert back.get_attribute("href") == f"/console/requests/{request_id}"
        assert page.request.get(gw.url + f"/console/requests/{request_id}").status == 200
        assert items.first.locator('a[href="/console/evals/console"]').count() == 0
        items.first.get_by_label("Your label").select_option("2")
        items.first.get_by_role("button", name="Save label").click()
        expect(page.locator("#review-empty")).to_be_visible()

        # A forged form changes nothing.
        forged = page.request.post(gw.url + url + "/feedback", form={"thumbs": "up"})
        assert forged.status == 403

        # vera (viewer): no forms, no content, no comment; her POST is refused.
        viewer = browser.new_context().new_page()
        sign_in(viewer, gw, vera, url)
        expect(viewer.locator("#feedback tbody tr")).to_have_count(1)
        expect(viewer.locator("#annotate")).to_have_count(0)
        assert QUESTION not in viewer.content()
        assert "wrong unit" not in viewer.content()
        vtoken = viewer.locator("input[name=csrf_token]").first.get_attribute("value") or ""
        refused = viewer.request.post(
            gw.url + url + "/feedback", form={"csrf_token": vtoken, "thumbs": "up"}
        )
        assert refused.status == 403
        viewer.goto(gw.url + "/console/evals/review?run=console")
        expect(viewer.locator("#review-pending")).to_be_visible()
        assert QUESTION not in viewer.content()
        viewer.context.close()
        page.goto(gw.url + url)  # the refused POST stored nothing
        expect(page.locator("#feedback tbody tr")).to_have_count(1)
