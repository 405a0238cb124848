"""The request log's search, every filter kind, sorting and the time-range picker, and the
dashboards page, in Debian's Chromium against a real gateway; a viewer may read the
dashboards and filter the log but not search content."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import orjson
from playwright.sync_api import Browser, Page, expect

from tests.support.gateway import base_config, running_gateway

from .conftest import shot
from .test_console_prompts import sign_in


def _chat(gw: Any, key: str, text: str, meta: dict[str, Any], **extra: Any) -> httpx.Response:
    resp = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={
            "Authorization": f"Bearer {key}",
            "x-pilothouse-metadata": orjson.dumps(meta).decode(),
        },
        json={"model": extra.pop("model", "chat"), "messages": [{"role": "user", "content": text}],
              **extra},
        timeout=30,
    )  # fmt: skip
    return resp


def test_search_filters_sorting_time_range_and_dashboards(
    page: Page, browser: Browser, tmp_path: Path
) -> None:
    config = base_config(
        f"sqlite:///{tmp_path}/d.db", tmp_path, telemetry={"capture_content": "full"}
    )
    config["models"]["chat"]["cache"] = {"ttl_s": 600}
    config["providers"]["broken"] = {"type": "chaos", "error_rate": 1.0}
    config["models"]["broken"] = {"targets": [{"provider": "broken", "model": "gpt-4o-mini"}]}
    with running_gateway(config) as gw:
        ada = gw.create_key(name="ada", role="admin")
        vera = gw.create_key(name="vera", role="viewer")
        with gw.admin() as admin:
            team = admin.post("/admin/teams", json={"name": "payments", "budget_usd": "5"}).json()
        app = gw.create_key(name="app", team_id=team["id"], budget_usd="2")
        ids: dict[str, str] = {}
        for name, text, meta in (
            ("refund", "how do refunds work for a damaged parcel", {"tags": ["billing"]}),
            ("weather", "what is the weather in lisbon tomorrow", {"feature": "chat-ui"}),
            ("long", "please write a very long essay about lighthouses and the sea " * 8,
             {"user": "bob", "session": "s-1"}),
        ):  # fmt: skip
            resp = _chat(gw, app, text, meta)
            assert resp.status_code == 200, resp.text
            ids[name] = resp.headers["x-request-id"]
        hit = _chat(gw, app, "how do refunds work for a damaged parcel", {"tags": ["billing"]})
        assert hit.headers.get("x-pilothouse-cache") == "hit"
        ids["hit"] = hit.headers["x-request-id"]
        streamed = _chat(gw, app, "stream a short poem about a parcel", {}, stream=True)
        assert streamed.status_code == 200
        ids["stream"] = streamed.headers["x-request-id"]
        failed = _chat(gw, app, "this one fails", {}, model="broken")
        assert failed.status_code >= 500
        ids["failed"] = failed.headers["x-request-id"]

        sign_in(page, gw, ada, "/console/requests")
        rows = page.locator("#request-log tbody tr")
        log = page.locator("#request-log")
        expect(rows).to_have_count(6)

        # Full-text search over prompts and (echoed) answers.
        page.get_by_label("Search prompts and responses").fill("parcel")
        page.get_by_role("button", name="Filter").click()
        expect(rows).to_have_count(3)  # the refund, its cache hit, the poem
        for name in ("refund", "hit", "stream"):
            expect(log).to_contain_text(ids[name])
        page.get_by_label("Search prompts and responses").fill("damaged parcel")
        page.get_by_label("Cache").select_option("hit")  # submits itself
        expect(rows).to_have_count(1)
        expect(log).to_contain_text(ids["hit"])
        shot(page, "70-request-log-search")
        with page.expect_download() as got:  # export is the filtered set
            page.get_by_role("link", name="Export CSV").click()
        exported = Path(got.value.path()).read_text()
        assert ids["hit"] in exported and ids["refund"] not in exported

        # Each filter kind narrows the log (as a shareable URL).
        def count(query: str) -> int:
            page.goto(f"{gw.url}/console/requests?{query}")
            return rows.count()

        assert count("tag=billing") == 2
        assert count("team=payments") == 6 and count("team=nosuch") == 0
        assert count("user=bob") == 1 and count("session=s-1") == 1
        assert count("feature=chat-ui") == 1
        assert count("provider=broken") == 1 and count("provider=cache") == 1
        assert count("status=5xx") == 1 and count("status=ok") == 5
        assert count("cache=miss") == 5
        assert count("prompt=none") == 0
        assert count("model=broken") == 1
        assert count("cost_min=0.000000000001") == 4  # priced answers; the hit cost nothing
        assert count("cost_max=0") == 2  # the cache hit and the failure
        page.goto(gw.url + "/console/requests")
        page.get_by_label("Latency at least (ms)").fill("0")
        page.get_by_label("Latency at most (ms)").fill("1000000")
        page.get_by_role("button", name="Filter").click()
        expect(rows).to_have_count(6)
        assert "latency_min=0" in page.url
        page.goto(gw.url + "/console/requests?latency_min=fast")
        expect(page.get_by_role("alert")).to_contain_text("“latency_min” must be a number")

        # Sorting: the cost header sorts most expensive first, a second click flips it.
        page.goto(gw.url + "/console/requests")
        page.locator("#sort-cost").click()
        expect(page).to_have_url(re.compile(r"sort=cost&order=desc"))
        expect(rows.first).to_contain_text(ids["long"])
        expect(page.locator("th[aria-sort='descending']")).to_contain_text("Cost")
        page.locator("#sort-cost").click()
        expect(page).to_have_url(re.compile(r"order=asc"))
        expect(rows.last).to_contain_text(ids["long"])
        page.locator("#sort-latency").click()
        expect(page.locator("th[aria-sort='descending']")).to_contain_text("Latency")
        shot(page, "71-request-log-sorted")

        # The time-range picker: a preset applies at once; a custom range is to the hour.
        page.get_by_label("Time range").select_option("1h")
        expect(page).to_have_url(re.compile(r"range=1h"))
        expect(rows).to_have_count(6)
        expect(page.get_by_label("From (UTC)")).to_be_hidden()
        page.get_by_label("Time range").select_option("custom")
        expect(page.get_by_label("From (UTC)")).to_be_visible()
        page.get_by_label("From (UTC)").fill("2020-01-01T10:45")
        page.get_by_label("To (UTC)").fill("2020-01-02T00:00")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("#empty-log")).to_be_visible()
        expect(page.get_by_label("From (UTC)")).to_have_value("2020-01-01T10:45")

        # Dashboards: rates, what the cache saved, percentiles per alias, budgets.
        page.get_by_role("link", name="Dashboards").click()
        expect(page.locator("#dash-totals")).to_contain_text("6")
        expect(page.locator("#error-rate")).to_contain_text("16.7%")
        expect(page.locator("#hit-rate")).to_contain_text("16.7%")
        expect(page.locator("#tokens-saved")).not_to_have_text("0")
        expect(page.locator("#dollars-saved")).to_have_text(re.compile(r"^\$0\.0+[1-9]"))
        chat_row = page.locator("#alias-table tbody tr", has_text="chat")
        expect(chat_row).to_contain_text(re.compile(r"\d+(\.\d)? ms"))
        expect(
            page.locator("#latency-charts svg polyline, #latency-charts svg rect")
        ).not_to_have_count(0)
        expect(page.locator("#chart-errors-title")).to_have_text("Error rate")
        expect(page.locator("#budgets-key")).to_contain_text("app")
        expect(page.locator("#budgets-key")).to_contain_text("$2.00")
        expect(page.locator("#budgets-team")).to_contain_text("payments")
        expect(page.locator("#budgets-team")).to_contain_text("$5.00")
        shot(page, "72-dashboards")
        page.get_by_label("Time range").select_option("7d")  # longer ranges go per day
        expect(page).to_have_url(re.compile(r"range=7d"))
        expect(page.locator(".page-head")).to_contain_text("per day")
        expect(page.locator("#error-rate")).to_contain_text("16.7%")
        page.get_by_label("Time range").select_option("custom")
        page.get_by_label("From (UTC)").fill("2020-01-01T10:30")
        page.get_by_label("To (UTC)").fill("2020-01-01T16:00")
        page.get_by_role("button", name="Apply").click()
        expect(page.locator("#empty-dashboards")).to_be_visible()
        expect(page.locator(".page-head")).to_contain_text("2020-01-01 10:00:00")  # to the hour
        expect(page.locator(".page-head")).to_contain_text("per hour")

        # A viewer reads the dashboards and filters the log, but never searches content.
        viewer = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        sign_in(viewer, gw, vera, "/console/dashboards")
        expect(viewer.locator("#hit-rate")).to_contain_text("16.7%")
        assert "damaged parcel" not in viewer.content()
        shot(viewer, "73-dashboards-viewer")
        viewer.goto(gw.url + "/console/requests?q=parcel")
        expect(viewer.get_by_role("alert")).to_contain_text("may not search message content")
        expect(viewer.locator("#request-log tbody tr")).to_have_count(6)  # q ignored
        expect(viewer.get_by_label("Search prompts and responses")).to_be_disabled()
        assert viewer.request.get(gw.url + "/console/export?q=parcel").status == 400
        viewer.goto(gw.url + "/console/requests?tag=billing")
        expect(viewer.locator("#request-log tbody tr")).to_have_count(2)
        shot(viewer, "74-request-log-viewer")
        viewer.context.close()
