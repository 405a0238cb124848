"""Key and budget management in a real browser: create (secret shown once), update, rotate,
revoke, each audited; an operator cannot mint admin keys; a viewer reads but cannot manage."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.support.gateway import base_config, running_gateway

from .conftest import shot
from .test_console_prompts import sign_in


def chat(url: str, key: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def test_key_management_in_the_console(page: Page, browser: Browser, tmp_path: Path) -> None:
    config = base_config(f"sqlite:///{tmp_path}/k.db", tmp_path)
    with running_gateway(config) as gw:
        olga = gw.create_key(name="olga", role="operator")
        vera = gw.create_key(name="vera", role="viewer")

        # olga (operator) creates an inference key with a budget; its secret is shown once.
        sign_in(page, gw, olga, "/console/keys")
        expect(page.get_by_role("heading", name="Keys and budgets")).to_be_visible()
        expect(page.get_by_label("Admin role")).to_have_count(0)  # operators mint no principals
        page.get_by_label("Name", exact=True).fill("support-bot")
        page.get_by_label("Models", exact=True).fill("chat")
        page.get_by_label("Budget (USD)", exact=True).fill("2.5")
        page.get_by_label("Budget period").select_option("month")
        page.get_by_role("button", name="Create key").click()
        box = page.locator("#new-secret")
        expect(box).to_contain_text("support-bot")
        secret = page.locator("#secret-value").inner_text().strip()
        assert secret.startswith("ph-") and len(secret) > 20, secret
        row = page.locator("#key-list tbody tr", has_text="support-bot")
        expect(row).to_contain_text("$2.5")
        expect(row).to_contain_text("month")
        expect(row).not_to_contain_text(secret)
        shot(page, "30-key-created")
        assert chat(gw.url, secret).status_code == 200

        # Reloading never shows the secret again.
        page.goto(gw.url + "/console/keys")
        expect(page.locator("#new-secret")).to_have_count(0)
        assert secret not in page.content()

        # Update: a new budget and model list, applied to the live key at once.
        key_id = (row.get_attribute("id") or "").removeprefix("key-")
        row.get_by_text("Manage support-bot").click()
        page.get_by_label("Budget of support-bot (USD)").fill("7")
        page.get_by_label("Models of support-bot").fill("chat, other")
        page.get_by_role("button", name="Save support-bot").click()
        expect(page.get_by_role("status")).to_have_text("Key updated.")
        row = page.locator(f"#key-{key_id}")
        expect(row).to_contain_text("$7")
        expect(row).to_contain_text("chat, other")

        # Bad input is a precise 400 on the page, and nothing changes.
        row.get_by_text("Manage support-bot").click()
        page.get_by_label("Budget of support-bot (USD)").fill("lots")
        page.get_by_role("button", name="Save support-bot").click()
        expect(page.get_by_role("alert")).to_contain_text("budget_usd")
        expect(page.locator(f"#key-{key_id}")).to_contain_text("$7")

        # Rotate without grace: the new secret is shown once, the old one stops working.
        page.locator(f"#key-{key_id}").get_by_text("Manage support-bot").click()
        page.get_by_label("Old secret of support-bot valid for (s)").fill("0")
        page.get_by_role("button", name="Rotate support-bot").click()
        expect(page.locator("#new-secret")).to_contain_text("rotated")
        rotated = page.locator("#secret-value").inner_text().strip()
        assert rotated != secret
        assert chat(gw.url, rotated).status_code == 200
        assert chat(gw.url, secret).status_code == 401

        # Revoke: gone from the active list, refused at the gateway.
        page.locator(f"#key-{key_id}").get_by_text("Manage support-bot").click()
        page.get_by_role("button", name="Revoke support-bot").click()
        expect(page.get_by_role("status")).to_contain_text("revoked")
        expect(page.locator(f"#key-{key_id}")).to_have_count(0)
        assert chat(gw.url, rotated).status_code == 401
        page.get_by_role("link", name="Show revoked keys").click()
        expect(page.locator(f"#key-{key_id}")).to_contain_text("revoked")

        # An operator cannot mint an admin-role key even with a hand-made form.
        token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
        minted = page.request.post(
            gw.url + "/console/keys",
            form={"csrf_token": token, "name": "sneaky", "role": "admin"},
        )
        assert minted.status == 403
        # ... nor rotate an admin-role key to read its secret.
        expect(page.get_by_text("Manage vera")).to_have_count(0)
        with gw.admin() as admin:
            ids = {k["name"]: k["id"] for k in admin.get("/admin/keys").json()["data"]}
        stolen = page.request.post(
            gw.url + f"/console/keys/{ids['vera']}/rotate", form={"csrf_token": token}
        )
        assert stolen.status == 403 and "ph-" not in stolen.text()
        assert chat(gw.url, vera).status_code != 401  # vera's secret still authenticates
        # A form without its CSRF token changes nothing.
        forged = page.request.post(gw.url + "/console/keys", form={"name": "forged"})
        assert forged.status == 403

        with gw.admin() as admin:
            params = {"actor": "olga", "limit": "500"}
            audit = admin.get("/admin/audit", params=params).json()["data"]
            names = [k["name"] for k in admin.get("/admin/keys").json()["data"]]
            everything = admin.get("/admin/audit").text
        actions = sorted(r["action"] for r in audit if r["target"] == key_id)
        assert actions == ["key.create", "key.revoke", "key.rotate", "key.update"], actions
        assert {r["actor"] for r in audit if r["target"] == key_id} == {"olga"}
        assert "sneaky" not in names and "forged" not in names
        assert secret not in everything and rotated not in everything

        # vera (viewer) reads keys and spend but has no forms, and a forged POST is refused.
        viewer = browser.new_context().new_page()
        sign_in(viewer, gw, vera, "/console/keys")
        expect(viewer.locator("#key-list")).to_contain_text("olga")
        expect(viewer.locator("#create-key")).to_have_count(0)
        expect(viewer.get_by_text("Manage olga")).to_have_count(0)
        shot(viewer, "31-keys-viewer")
        vtoken = viewer.locator("input[name=csrf_token]").first.get_attribute("value") or ""
        refused = viewer.request.post(
            gw.url + "/console/keys", form={"csrf_token": vtoken, "name": "by-vera"}
        )
        assert refused.status == 403
        with gw.admin() as admin:
            names = [k["name"] for k in admin.get("/admin/keys").json()["data"]]
        assert "by-vera" not in names
        viewer.context.close()
