"""The console in a real browser against a real gateway: sign in, filter, open a trace,
read the charts, sign out; CSRF and escaping as a user (or attacker) would meet them."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
from playwright.sync_api import Page, expect

from pilothouse.store.tables import usage_records
from tests.support.gateway import ADMIN_KEY, ThreadedGateway, base_config, running_gateway
from tests.unit.console.sample import TRACED, XSS, XSS_PROMPT, XSS_REQUEST, Sample, write_sample

from .conftest import shot

BULK = 55  # more than one page of the log (50 rows)


def seed(gw: ThreadedGateway) -> Sample:
    """Write the sample rows through the gateway's own engine, on its loop (Playwright's sync
    API owns this thread's loop)."""
    assert gw.runtime is not None
    engine = gw.runtime.engine

    async def run() -> Sample:
        sample = await write_sample(engine)
        rows = [
            {
                "id": f"ur_bulk_{i:03d}",
                "request_id": f"req_bulk_{i:03d}",
                "created_at": sample.now - timedelta(days=5, minutes=i),
                "endpoint": "chat",
                "alias": "support-bot",
                "status": 200,
                "latency_ms": 100.0,
                "cost_pico": 1,
                "metadata": {"feature": "bulk"},
            }
            for i in range(BULK)
        ]
        async with engine.begin() as conn:
            await conn.execute(usage_records.insert(), rows)
        return sample

    return asyncio.run_coroutine_threadsafe(run(), gw.server_loop()).result(timeout=60)


def sign_in(page: Page, gw: ThreadedGateway, key: str) -> None:
    page.get_by_label("Admin key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def log_rows(page: Page) -> object:
    return page.locator("#request-log tbody tr")


def test_console_end_to_end(page: Page, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/console.db"
    with running_gateway(base_config(store, tmp_path)) as gw:
        sample = seed(gw)

        # Signing in: a wrong key is refused with a message, the right one opens the log.
        page.goto(gw.url + "/console")
        expect(page).to_have_url(re.compile(r"/console/login"))
        sign_in(page, gw, "not-the-admin-key")
        expect(page.get_by_role("alert")).to_have_text("That is not a valid admin key.")
        shot(page, "01-login-refused")
        sign_in(page, gw, ADMIN_KEY)
        expect(page).to_have_url(re.compile(r"/console/requests$"))
        expect(page.get_by_role("heading", name="Requests")).to_be_visible()
        assert page.evaluate("document.cookie") == ""  # the session cookie is HttpOnly
        expect(log_rows(page)).to_have_count(50)
        shot(page, "02-request-log")

        # Cursor pagination: the 63 requests take two pages, with no overlap.
        first_page = log_rows(page).locator("td:nth-child(2)").all_inner_texts()
        page.get_by_role("link", name="Older »").click()
        expect(log_rows(page)).to_have_count(8 + BULK - 50)
        second_page = log_rows(page).locator("td:nth-child(2)").all_inner_texts()
        assert not set(first_page) & set(second_page)
        page.get_by_role("link", name="« Newest").click()
        expect(log_rows(page)).to_have_count(50)

        # Filters: a select applies itself; text filters combine with it.
        page.get_by_label("Status").select_option("error")
        expect(page).to_have_url(re.compile(r"status=error"))
        expect(log_rows(page)).to_have_count(3)
        page.get_by_label("User").fill("alice")
        page.get_by_role("button", name="Filter").click()
        expect(log_rows(page)).to_have_count(1)
        expect(log_rows(page).first).to_contain_text("req_sample_0003")
        expect(log_rows(page).first).to_contain_text("429")
        shot(page, "03-request-log-filtered")
        page.get_by_role("link", name="Clear").click()
        page.get_by_label("Key").select_option(
            label=f"checkout-service ({sample.keys['checkout-service']})"
        )
        expect(log_rows(page)).to_have_count(4)
        page.get_by_label("Feature").fill("support-chat")
        page.get_by_label("Time range").select_option("custom")
        page.get_by_label("From (UTC)").fill("90m")
        page.get_by_role("button", name="Filter").click()
        expect(log_rows(page)).to_have_count(1)

        # The trace: reconstruction, attempts and the span waterfall.
        page.get_by_role("link", name=TRACED).click()
        expect(page.get_by_role("heading", name=re.compile(f"Request {TRACED}"))).to_be_visible()
        expect(page.locator("#cost")).to_have_text("$0.001234567891")
        expect(page.locator("#summary")).to_contain_text("900 ms")
        expect(page.locator("#summary")).to_contain_text("support-answer v7")
        waterfall = page.locator("#waterfall tbody tr")
        expect(waterfall).to_have_count(8)
        expect(page.locator("#waterfall svg rect")).to_have_count(8)
        expect(page.locator("#waterfall rect.bar-error")).to_have_count(1)
        expect(page.locator("#attempts tbody tr")).to_have_count(2)
        expect(page.locator("#attempts tbody tr").first).to_contain_text("503")
        expect(page.locator("#messages")).to_contain_text("Where is order 1234? Reply to [EMAIL].")
        expect(page.locator("#response")).to_contain_text("Order 1234 shipped yesterday.")
        expect(page.locator("#documents")).to_contain_text("kb-42")
        expect(page.locator("#tool-calls")).to_contain_text("get_order")
        expect(page.locator("#guard-actions")).to_contain_text("redacted")
        expect(page.locator("#feedback")).to_contain_text("resolved")
        attempt = page.locator("#span-1000000000000005")
        expect(attempt).not_to_have_attribute("open", "")
        page.locator("#waterfall").get_by_role("link", name="chat gpt-4o-mini").first.click()
        expect(attempt).to_have_attribute("open", "")
        expect(attempt).to_contain_text("http.response.status_code")
        shot(page, "04-trace-detail")

        # Prompts can hold HTML/JS: they are shown, never run.
        page.goto(f"{gw.url}/console/requests/{XSS_REQUEST}")
        expect(page.locator("#messages")).to_contain_text(XSS_PROMPT)
        expect(page.locator("#response")).to_contain_text(XSS)
        expect(page.locator("#feedback")).to_contain_text(XSS)
        assert page.evaluate("window.__xss") is None
        assert page.locator("img[src=x]").count() == 0
        shot(page, "05-escaped-content")

        # Usage and cost charts.
        page.get_by_role("link", name="Usage").click()
        expect(page.locator("#totals")).to_contain_text("63")
        expect(page.get_by_role("img", name="Requests per day (UTC)")).to_be_visible()
        assert page.locator("svg.chart rect").count() > 5
        page.get_by_label("Break down by").select_option("team")
        expect(page.locator("#groups-team")).to_contain_text("payments")
        shot(page, "06-usage")
        page.get_by_role("link", name="Costs").click()
        expect(page.locator("#total-cost")).to_have_text(f"${_usd(sample.total_pico + BULK)}")
        expect(page.get_by_role("img", name="Cost by team")).to_be_visible()
        expect(page.locator("#groups-team")).to_contain_text("research")
        shot(page, "07-costs")

        # CSRF: a POST without the form's token is refused and changes nothing.
        refused = page.request.post(gw.url + "/console/logout", form={"anything": "1"})
        assert refused.status == 403
        page.goto(gw.url + "/console/requests")
        expect(page.get_by_role("heading", name="Requests")).to_be_visible()

        # Signing out ends the session.
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("status")).to_have_text("You have signed out.")
        page.goto(gw.url + "/console/costs")
        expect(page).to_have_url(re.compile(r"/console/login\?next="))


def _usd(pico: int) -> str:
    from pilothouse.limits.money import pico_to_str

    text = pico_to_str(pico)
    return text if "." in text and len(text.split(".")[1]) >= 2 else f"{float(text):.2f}"


def test_empty_console(page: Page, tmp_path: Path) -> None:
    with running_gateway(base_config(f"sqlite:///{tmp_path}/empty.db", tmp_path)) as gw:
        page.goto(gw.url + "/console/login")
        sign_in(page, gw, ADMIN_KEY)
        expect(page.locator("#empty-log")).to_contain_text("No requests yet")
        page.get_by_role("link", name="Usage").click()
        expect(page.locator("#empty-usage")).to_be_visible()
        page.get_by_role("link", name="Costs").click()
        expect(page.locator("#empty-costs")).to_be_visible()
        expect(page.locator("#total-cost")).to_have_text("$0.00")
        shot(page, "08-empty-costs")


def test_a_real_request_is_found_and_explained(
    page: Page, postgres_url: str, tmp_path: Path
) -> None:
    """Through the gateway on PostgreSQL: a retried, streamed request, traced by the gateway."""
    config = base_config(
        postgres_url,
        tmp_path,
        providers={"c": {"type": "chaos", "script": ["error:503"]}},
        models={"chat": {"targets": [{"provider": "c", "model": "gpt-4o-mini"}], "retries": 1}},
        prices={"gpt-4o-mini": {"input": "0.15", "output": "0.60"}},
    )
    with running_gateway(config) as gw:
        key = gw.create_key(name="e2e <app>", metadata={"team": "growth"})
        headers = {
            "Authorization": f"Bearer {key}",
            "x-pilothouse-metadata": orjson.dumps({"user": "dora", "feature": "e2e"}).decode(),
        }
        body = {
            "model": "chat",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "<b>bold</b> hello"}],
        }
        with httpx.stream(
            "POST", gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=30
        ) as resp:
            assert resp.status_code == 200
            resp.read()
            request_id = resp.headers["x-request-id"]
            trace_id = resp.headers["x-pilothouse-trace-id"]
        with gw.admin() as admin:
            trace = admin.get(f"/admin/traces/{request_id}").json()

        page.goto(gw.url + "/console/requests?user=dora")
        sign_in(page, gw, ADMIN_KEY)
        expect(log_rows(page)).to_have_count(1)
        expect(log_rows(page).first).to_contain_text("e2e <app>")
        page.get_by_role("link", name=request_id).click()
        expect(page.locator("#summary")).to_contain_text("chat → c/gpt-4o-mini")
        expect(page.locator("#cost")).to_have_text(f"${trace['cost_usd']}")
        expect(page.locator("#attempts tbody tr")).to_have_count(2)
        expect(page.locator("#attempts tbody tr").nth(0)).to_contain_text("error")
        expect(page.locator("#attempts tbody tr").nth(1)).to_contain_text("ok")
        expect(page.locator("#messages")).to_contain_text("<b>bold</b> hello")
        expect(page.locator("#waterfall tbody tr").first).to_contain_text("chat chat")
        assert page.locator("#waterfall tbody tr").count() >= 3
        shot(page, "09-real-request-postgres")
        page.get_by_role("link", name="Costs").click()
        expect(page.locator("#groups-team")).to_contain_text("growth")
        expect(page.locator("#groups-key")).to_contain_text("e2e <app>")

        # The trace id a client got back opens the same page.
        page.get_by_role("link", name="Requests").click()
        page.get_by_label("Open a request or trace id").fill(trace_id)
        page.get_by_role("button", name="Open").click()
        expect(page).to_have_url(re.compile(f"/console/traces/{trace_id}$"))
        expect(
            page.get_by_role("heading", name=re.compile(f"Request {request_id}"))
        ).to_be_visible()
