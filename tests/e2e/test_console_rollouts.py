"""The rollouts page in a real browser: running and past rollouts, both arms with intervals,
guards, the SRM check, and roll back (operator, CSRF, audited); a viewer cannot end one."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.integration.test_rollouts import chat, config, tick
from tests.support.gateway import running_gateway

from .conftest import shot
from .test_console_prompts import sign_in


def test_rollouts_page_and_rollback(page: Page, browser: Browser, tmp_path: Path) -> None:
    cfg = config(f"sqlite:///{tmp_path}/r.db", tmp_path)
    cfg["rollouts"]["history_interval_s"] = 0.001  # every test tick is its own trend point
    with running_gateway(cfg) as gw:
        olga = gw.create_key(name="olga", role="operator")
        vera = gw.create_key(name="vera", role="viewer")
        app = gw.create_key(name="app")
        with gw.admin() as admin:
            started = admin.post(
                "/admin/rollouts",
                json={"alias": "chat", "candidate_alias": "chat-next", "percent": 50,
                      "sticky": "user", "min_samples": 5},
            )  # fmt: skip
            assert started.status_code == 201, started.text
        rollout_id = started.json()["id"]
        for batch in range(6):
            for i in range(batch * 4, batch * 4 + 4):
                assert chat(gw, app, user=f"u{i}").status_code == 200
            tick(gw)

        # A viewer reads the page but has no buttons, and a forged POST is refused.
        viewer = browser.new_context().new_page()
        sign_in(viewer, gw, vera, "/console/rollouts")
        expect(viewer.locator("#running-rollouts")).to_contain_text(rollout_id)
        viewer.get_by_role("link", name=rollout_id).click()
        expect(viewer.locator("#arms")).to_contain_text("Requests")
        expect(viewer.locator("#rollback-form")).to_have_count(0)
        token = viewer.locator("input[name=csrf_token]").first.get_attribute("value") or ""
        refused = viewer.request.post(
            f"{gw.url}/console/rollouts/{rollout_id}/rollback", form={"csrf_token": token}
        )
        assert refused.status == 403
        viewer.context.close()

        sign_in(page, gw, olga, f"/console/rollouts/{rollout_id}")
        arms = page.locator("#arms")
        requests_row = arms.locator("tr", has_text="Requests").first
        cells = requests_row.locator("td")
        counts = [int(cells.nth(i).inner_text()) for i in range(2)]
        assert sum(counts) == 24 and min(counts) > 0, counts
        expect(arms.locator("tr", has_text="Error rate")).to_contain_text("[")  # an interval
        expect(page.locator("#srm")).to_contain_text("target share 0.5")
        trends = page.locator("#guard-trends")
        expect(trends.locator("figcaption", has_text="error_rate")).to_have_count(1)
        expect(trends.locator("figcaption", has_text="latency_p95_s")).to_have_count(1)
        line = trends.locator("figure", has_text="error_rate").locator("polyline")
        assert len((line.get_attribute("points") or "").split()) >= 2  # at least two points
        expect(
            trends.locator("figure", has_text="error_rate").locator("line.boundary")
        ).to_have_count(1)
        shot(page, "50-rollout")

        # A forged form changes nothing; the real one rolls back, audited under olga.
        forged = page.request.post(f"{gw.url}/console/rollouts/{rollout_id}/rollback")
        assert forged.status == 403
        page.get_by_label("Reason for rolling back").fill("seen enough")
        page.get_by_role("button", name="Roll back").click()
        expect(page.get_by_role("status")).to_have_text("Rollout rolled back.")
        expect(page.locator("#rollout-summary")).to_contain_text("by olga: seen enough")
        expect(page.locator("#rollback-form")).to_have_count(0)
        page.get_by_role("link", name="Rollouts").first.click()
        expect(page.locator("#past-rollouts")).to_contain_text(rollout_id)
        expect(page.locator("#running-rollouts")).not_to_contain_text(rollout_id)
        with gw.admin() as admin:
            rows = admin.get("/admin/audit", params={"actor": "olga"}).json()["data"]
        assert [r["target"] for r in rows if "rollback" in r["action"]] == [rollout_id]
        assert page.request.get(gw.url + "/console/rollouts/ro_nope").status == 404
