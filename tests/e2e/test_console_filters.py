"""Request log filters in a real browser: session, provider, prompt and cache, shareable as
URLs; bad values are messages, not errors; a viewer filters without seeing content."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import orjson
from playwright.sync_api import Browser, Page, expect

from tests.support.gateway import base_config, running_gateway

from .conftest import shot
from .test_console_prompts import sign_in


def test_request_log_filters(page: Page, browser: Browser, tmp_path: Path) -> None:
    config = base_config(
        f"sqlite:///{tmp_path}/f.db", tmp_path, telemetry={"capture_content": "full"}
    )
    with running_gateway(config) as gw:
        ada = gw.create_key(name="ada", role="admin")
        vera = gw.create_key(name="vera", role="viewer")
        app = gw.create_key(name="app")
        ids = {}
        for session in ("s-one", "s-two", "s-two"):
            resp = httpx.post(
                gw.url + "/v1/chat/completions",
                headers={
                    "Authorization": f"Bearer {app}",
                    "x-pilothouse-metadata": orjson.dumps({"session": session}).decode(),
                },
                json={"model": "chat", "messages": [{"role": "user", "content": "secret plan"}]},
                timeout=30,
            )
            assert resp.status_code == 200
            ids.setdefault(session, []).append(resp.headers["x-request-id"])

        sign_in(page, gw, vera, "/console/requests")
        rows = page.locator("#request-log tbody tr")
        expect(rows).to_have_count(3)
        page.get_by_label("Session").fill("s-two")
        page.get_by_role("button", name="Filter").click()
        expect(rows).to_have_count(2)
        for rid in ids["s-two"]:
            expect(page.locator("#request-log")).to_contain_text(rid)
        expect(page.locator("#request-log")).not_to_contain_text(ids["s-one"][0])
        assert "session=s-two" in page.url
        page.get_by_label("Provider").fill("chaos")
        page.get_by_role("button", name="Filter").click()
        expect(rows).to_have_count(2)
        page.get_by_label("Cache").select_option("hit")  # submits itself
        expect(page).to_have_url(re.compile(r"cache=hit"))
        expect(rows).to_have_count(0)
        page.goto(gw.url + "/console/requests?cache=maybe")
        expect(page.get_by_role("alert")).to_contain_text("“cache” must be hit or miss")
        page.goto(gw.url + "/console/requests?prompt=none@1")
        expect(rows).to_have_count(0)
        page.goto(gw.url + "/console/requests?session=s-one&cache=miss")
        expect(rows).to_have_count(1)
        assert "secret plan" not in page.content()

        # Export the filtered set: CSV and JSONL, the same rows, no content.
        page.goto(gw.url + "/console/requests?session=s-two")
        with page.expect_download() as got:
            page.get_by_role("link", name="Export CSV").click()
        text = Path(got.value.path()).read_text()
        lines = text.strip().splitlines()
        assert lines[0].startswith("request_id,created_at")
        assert len(lines) == 3 and all(rid in text for rid in ids["s-two"])
        assert ids["s-one"][0] not in text and "secret plan" not in text
        jsonl = page.request.get(gw.url + "/console/export?session=s-two&format=jsonl")
        records = [orjson.loads(line) for line in jsonl.text().splitlines()]
        assert [r["session"] for r in records] == ["s-two", "s-two"]
        assert {r["request_id"] for r in records} == set(ids["s-two"])
        assert page.request.get(gw.url + "/console/export?format=xml").status == 400

        # The session view: its requests in order with totals; the viewer sees no content.
        page.goto(gw.url + "/console/sessions/s-two")
        expect(page.locator("#session-totals")).to_contain_text("2 requests")
        turns = page.locator("#conversation > li")
        expect(turns).to_have_count(2)
        for i, rid in enumerate(ids["s-two"]):
            expect(turns.nth(i)).to_contain_text(rid)
        assert "secret plan" not in page.content()
        assert page.request.get(gw.url + "/console/sessions/nope").status == 404

        # An admin reads the session as a conversation.
        admin = browser.new_context().new_page()
        sign_in(admin, gw, ada, "/console/sessions/s-one")
        expect(admin.locator("#conversation")).to_contain_text("secret plan")
        expect(admin.locator("#session-totals")).to_contain_text("1 request ")
        shot(admin, "60-session")
        admin.context.close()
