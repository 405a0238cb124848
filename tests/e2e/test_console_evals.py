"""The evaluation pages in a real browser: runs made by `pilothouse promote`, one run's gates,
metrics and cases with links to their requests, a paired comparison, and the review queue."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import yaml
from playwright.sync_api import Browser, Page, expect

from pilothouse.config.load import load_settings
from tests.integration.test_promote_evals import bundle, cli
from tests.support.gateway import ADMIN_KEY, ThreadedGateway, base_config, write_config

from .conftest import shot

WORDS = [f"word{i}" for i in range(8)]


def sign_in(page: Page, gw: ThreadedGateway, key: str, path: str) -> None:
    page.goto(gw.url + path)
    page.get_by_label("Admin key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def test_eval_runs_compare_and_review_in_the_console(
    page: Page, browser: Browser, tmp_path: Path
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "name": "echo-qa",
                "target": {"model": "chat"},
                "dataset": [
                    {"id": w, "input": w, "expected": w, "metadata": {"half": i % 2}}
                    for i, w in enumerate(WORDS)
                ],
                "slices": ["metadata.half"],
                "scorers": [
                    {"type": "contains"},
                    # The echo upstream cannot judge: every verdict is an error → review queue.
                    {"type": "judge", "model": "chat", "rubric": "Correct?", "scale": [1, 5]},
                ],
                "gates": [{"metric": "contains.pass_rate", "max_drop": 0.02, "vs": "baseline"}],
            }
        )
    )
    releases = {"labels": {"staging": {"requires": ["evals"]}}}
    config = base_config(f"sqlite:///{tmp_path}/e.db", tmp_path, releases=releases)
    cfg = write_config(tmp_path / "c.yaml", config)
    for n, content in ((1, "{{ question }}"), (2, "I cannot help.")):
        (tmp_path / f"v{n}.yaml").write_text(yaml.safe_dump(bundle(suite, content, f"v{n}")))
        assert cli("prompts", "push", str(tmp_path / f"v{n}.yaml"), "-c", str(cfg)).returncode == 0
    first_run = cli("promote", "echo-answer", "--version", "1", "--to", "staging", "-c", str(cfg))
    assert first_run.returncode == 0, first_run.stderr
    refused = cli("promote", "echo-answer", "--version", "2", "--to", "staging", "-c", str(cfg))
    assert refused.returncode == 2, refused.stderr
    run_ids = set(re.findall(r"run (run_[0-9a-z]+)", refused.stderr))
    first = set(re.findall(r"baseline (run_[0-9a-z]+)", refused.stderr))
    assert len(run_ids) == 1 and len(first) == 1
    good, bad = first.pop(), run_ids.pop()

    gw = ThreadedGateway(load_settings(cfg)).start()
    try:
        viewer_key = gw.create_key(name="vera", role="viewer")
        sign_in(page, gw, ADMIN_KEY, "/console/evals")
        expect(page.get_by_role("heading", name="Evaluations")).to_be_visible()
        runs = page.locator("#eval-runs tbody tr")
        expect(runs).to_have_count(2)
        expect(runs.filter(has_text=bad)).to_contain_text("gates fail")
        expect(runs.filter(has_text=good)).to_contain_text("gates pass")

        # One run: the failed paired gate, metrics with intervals, slices, every case.
        page.get_by_role("link", name=bad).click()
        expect(page.locator("#eval-gates")).to_contain_text("significant drop")
        metric = page.locator("#eval-metrics tbody tr", has_text="contains.pass_rate")
        expect(metric).to_contain_text("0.000")
        expect(metric).to_contain_text("[0.000, ")
        expect(page.locator("#eval-slices")).to_contain_text("metadata.half=1")
        cases = page.locator("#eval-cases tbody tr")
        expect(cases).to_have_count(len(WORDS))
        expect(cases.first).to_contain_text("I cannot help.")
        shot(page, "30-eval-run")
        page.get_by_role("link", name="failing only").click()
        expect(cases).to_have_count(len(WORDS))  # every case fails contains in v2
        # Drill down from a case to the gateway request that produced it.
        cases.first.locator("td").nth(4).get_by_role("link").first.click()
        expect(page.locator("#lineage")).to_contain_text("echo-answer v2")

        # Compare: the drop is real (paired, McNemar), and says which cases flipped.
        page.goto(f"{gw.url}/console/evals/compare")
        page.get_by_label("Baseline run").select_option(good)
        page.get_by_label("Current run").select_option(bad)
        page.get_by_role("button", name="Compare").click()
        row = page.locator("#comparison tbody tr", has_text="contains.pass_rate")
        expect(row).to_contain_text("real drop")
        expect(row).to_contain_text("-1.000")
        expect(row).to_contain_text("to fail: word0")
        shot(page, "31-eval-compare")

        # Review queue: label one judge verdict in the browser; the export has it.
        page.get_by_role("navigation").get_by_role("link", name="Evaluations").click()
        page.get_by_role("link", name=re.compile(r"review queue")).click()
        pending = page.locator("#review-pending")
        expect(pending).to_contain_text(f"{2 * len(WORDS)} items pending")
        first_item = page.locator(".review-item").first
        case_id = first_item.locator("h2 .mono").first.inner_text()
        first_item.get_by_label("Your label").select_option("fail")
        first_item.get_by_label("Note").fill("echo, not an answer")
        first_item.get_by_role("button", name="Save label").click()
        expect(page.get_by_role("status")).to_have_text(f"Label saved for {case_id}.")
        expect(pending).to_contain_text(f"{2 * len(WORDS) - 1} items pending")
        shot(page, "32-review")
        exported = cli("review", "export", "-c", str(cfg))
        assert exported.returncode == 0, exported.stderr
        [label] = [orjson.loads(line) for line in exported.stdout.splitlines()]
        assert (label["id"], label["label"]) == (case_id, "fail")
        assert label["note"] == "echo, not an answer"
        with gw.admin() as admin:
            audit = admin.get("/admin/audit", params={"action": "eval.label"}).json()["data"]
        assert [r["actor"] for r in audit] == ["bootstrap"]

        # A viewer reads runs without content and cannot label.
        viewer = browser.new_context().new_page()
        sign_in(viewer, gw, viewer_key, f"/console/evals/{bad}")
        expect(viewer.locator("#eval-cases")).to_contain_text("content hidden")
        expect(viewer.locator("#eval-cases")).not_to_contain_text("I cannot help.")
        viewer.goto(gw.url + "/console/evals/review")
        expect(viewer.locator(".review-item").first).to_be_visible()
        expect(viewer.get_by_role("button", name="Save label")).to_have_count(0)
        token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
        item_form = page.locator(".review-item form").first.get_attribute("action")
        assert item_form is not None
        forged = viewer.request.post(
            gw.url + item_form, form={"csrf_token": token or "", "label": "pass"}
        )
        assert forged.status == 403
        assert len(cli("review", "export", "-c", str(cfg)).stdout.splitlines()) == 1
        viewer.context.close()
    finally:
        gw.stop()
