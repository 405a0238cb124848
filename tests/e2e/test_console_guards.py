"""The guard panel and the guards page in a real browser: the enforcement receipt of each
request (never the values it found), blocks/redactions/flags over time by guard, entity
type, key and alias, and drill-downs that open exactly those requests in the request log."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.support.gateway import ThreadedGateway, base_config, running_gateway

from .conftest import shot
from .test_console_prompts import sign_in

EMAIL = "maria.lopez@example.org"
SECRET = "sk-proj-" + "Zq8" * 12
GUARDS = {
    "strict": {
        "input": [
            {"type": "pii", "action": "pseudonymize", "entities": ["EMAIL_ADDRESS"]},
            {"type": "secrets", "action": "block"},
            {"type": "regex", "name": "internal-ids", "pattern": "ACME-\\d{6}", "action": "redact"},
        ],
        "on_error": "block",
    }
}


def chat(gw: ThreadedGateway, key: str, text: str, alias: str = "chat") -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": alias, "messages": [{"role": "user", "content": text}]},
        timeout=60,
    )


def log_ids(page: Page) -> set[str]:
    cells = page.locator("#request-log tbody tr td:nth-child(2)").all_inner_texts()
    return {c.strip() for c in cells}


def test_guard_receipt_and_guards_page(page: Page, browser: Browser, tmp_path: Path) -> None:
    target = {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}], "guards": "strict"}
    config = base_config(
        f"sqlite:///{tmp_path}/g.db", tmp_path, telemetry={"capture_content": "full"},
        guards=GUARDS, models={"chat": target, "chat-b": target},
    )  # fmt: skip
    with running_gateway(config) as gw:
        ada = gw.create_key(name="ada", role="admin")
        vera = gw.create_key(name="vera", role="viewer")
        app, other = gw.create_key(name="app"), gw.create_key(name="other")
        pii = chat(gw, app, f"Please write to {EMAIL} about the plan")
        assert pii.status_code == 200, pii.text
        blocked = chat(gw, app, f"deploy it with {SECRET} now")
        assert blocked.status_code == 400 and blocked.json()["error"]["code"] == "guard_blocked"
        redacted = chat(gw, other, "look up ticket ACME-123456 please", alias="chat-b")
        assert redacted.status_code == 200, redacted.text
        clean = chat(gw, other, "what is the weather like")
        assert clean.status_code == 200
        answers = {"pii": pii, "blocked": blocked, "redacted": redacted, "clean": clean}
        rid = {name: r.headers["x-request-id"] for name, r in answers.items()}

        # The request page's guard panel: each guard run, its verdict and entity counts.
        sign_in(page, gw, ada, f"/console/requests/{rid['pii']}")
        panel = page.locator("#guard-panel")
        expect(panel).to_be_visible()
        expect(page.locator("#receipt-verdict")).to_have_text("pseudonymize")
        receipt = page.locator("#guard-receipt tbody tr")
        pii_row = receipt.filter(has=page.locator("th", has_text=re.compile("^pii$")))
        expect(pii_row).to_have_count(1)
        expect(pii_row).to_contain_text("input")
        expect(pii_row).to_contain_text("pseudonymize")
        expect(pii_row).to_contain_text("EMAIL_ADDRESS: 1")
        expect(receipt.filter(has_text="secrets")).to_contain_text("pass")
        expect(receipt.filter(has_text="internal-ids")).to_contain_text("pass")
        assert EMAIL not in panel.inner_text()
        shot(page, "70-request-guard-panel")

        page.goto(gw.url + f"/console/requests/{rid['blocked']}")
        expect(page.locator("#receipt-verdict")).to_have_text("block")
        expect(page.locator("#guard-receipt")).not_to_contain_text(SECRET)

        # The guards page: totals, the time series and the tables.
        page.goto(gw.url + "/console/guards")
        totals = page.locator("#guard-totals")
        expect(totals).to_contain_text("Guarded requests4")
        expect(totals).to_contain_text("Blocked1")
        expect(totals).to_contain_text("Redacted1")
        expect(totals).to_contain_text("Pseudonymized1")
        expect(page.locator("#guard-timeline svg rect")).not_to_have_count(0)
        by_guard = page.locator("#by-guard tbody tr")
        expect(by_guard.filter(has_text="secrets")).to_contain_text("4")  # ran on every request
        expect(page.locator("#by-entity")).to_contain_text("EMAIL_ADDRESS")
        expect(page.locator("#by-key")).to_contain_text("app")
        expect(page.locator("#by-alias")).to_contain_text("chat-b")
        assert EMAIL not in page.content() and SECRET not in page.content()
        shot(page, "71-guards")

        # Drill-downs: each figure opens exactly its requests in the request log.
        by_guard.filter(has_text="secrets").get_by_role("link", name="1").click()
        expect(page).to_have_url(re.compile(r"/console/requests\?.*guard=secrets.*verdict=block"))
        expect(page.locator("#request-log tbody tr")).to_have_count(1)
        assert log_ids(page) == {rid["blocked"]}
        shot(page, "72-requests-guard-filter")

        page.goto(gw.url + "/console/guards")
        page.locator("#by-entity tbody tr", has_text="EMAIL_ADDRESS").get_by_role("link").click()
        expect(page.locator("#request-log tbody tr")).to_have_count(1)
        assert log_ids(page) == {rid["pii"]}

        page.goto(gw.url + "/console/guards")
        alias_row = page.locator(
            "#by-alias tbody tr", has=page.locator("th", has_text=re.compile("^chat-b$"))
        )
        alias_row.get_by_role("link", name="1").click()
        assert log_ids(page) == {rid["redacted"]}
        assert "model=chat-b" in page.url and "verdict=redact" in page.url

        page.goto(gw.url + "/console/requests?verdict=acted")
        expect(page.locator("#request-log tbody tr")).to_have_count(3)
        assert rid["clean"] not in log_ids(page)
        page.goto(gw.url + "/console/requests?verdict=maybe")
        expect(page.get_by_role("alert")).to_contain_text("“verdict” must be one of")

        # Narrowed to a key, the page counts that key's requests only.
        page.goto(gw.url + "/console/guards")
        other_id = page.locator("#g-key option", has_text="other (").get_attribute("value")
        assert other_id
        page.get_by_label("Key").select_option(other_id)  # submits itself
        expect(page.locator("#guard-totals")).to_contain_text("Guarded requests2")
        expect(page.locator("#guard-totals")).to_contain_text("Blocked0")

        # A viewer sees the receipt (it holds no values) but not the content.
        viewer = browser.new_context().new_page()
        sign_in(viewer, gw, vera, f"/console/requests/{rid['pii']}")
        expect(viewer.locator("#guard-receipt")).to_contain_text("EMAIL_ADDRESS: 1")
        assert "about the plan" not in viewer.content()
        viewer.goto(gw.url + "/console/guards")
        expect(viewer.locator("#guard-totals")).to_contain_text("Blocked1")
        shot(viewer, "73-guards-viewer")
        viewer.context.close()
