"""RAG in the console, in a real browser: the collections page and its status figures, a
collection's stale documents, the search playground (dense, keyword and hybrid side by side,
as the signed-in principal's groups allow; no chunk text for a viewer), and the request
page's retrieval spans."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect
from typer.testing import CliRunner

from pilothouse.cli.main import app as cli
from tests.integration.rag.conftest import EMBED
from tests.support.gateway import ThreadedGateway, base_config, running_gateway

from .conftest import shot
from .test_console_prompts import sign_in

PTO = "Staff get 25 days of paid leave a year."
SALARIES = "The salary bands for 2026 are confidential."


@pytest.fixture(scope="module")
def rag_gw(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ThreadedGateway, dict[str, Any]]]:
    """A gateway with the issue's collection; documents ingested by the CLI through it
    (module scope: before any test starts Playwright, which owns this thread's loop)."""
    tmp = tmp_path_factory.mktemp("collections")
    rag = {
        "store": {"url": f"sqlite:///{tmp}/rag.db"},
        "collections": {
            "handbook": {
                "embedder": "embed-local",
                "chunking": {"strategy": "recursive", "max_tokens": 300, "overlap": 40},
                "search": {"mode": "hybrid", "k": 8, "rerank": False},
                "acl": {"default": "deny"},
                "freshness": {"max_age": "7d"},
            }
        },
    }
    cfg = base_config(
        f"sqlite:///{tmp}/ph.db", tmp, **EMBED, rag=rag, telemetry={"capture_content": "full"}
    )
    cfg["models"]["chat"] = {"targets": [{"provider": "chaos", "model": "gpt-4o-mini"}]}
    path = tmp / "pilothouse.yaml"
    path.write_text(yaml.safe_dump(cfg))
    (tmp / "staff").mkdir()
    (tmp / "hr").mkdir()
    (tmp / "staff" / "pto.md").write_text(f"# Paid leave\n\n{PTO}\n")
    (tmp / "hr" / "salaries.md").write_text(f"# Salaries\n\n{SALARIES}\n")
    with running_gateway(cfg) as gw:
        writer = gw.create_key(name="ingest")
        for folder, group in (("staff", "staff"), ("hr", "hr")):
            result = CliRunner().invoke(
                cli,
                ["rag", "ingest", "handbook", str(tmp / folder), "--acl", group,
                 "--config", str(path), "--base-url", gw.url + "/v1", "--api-key", writer],
            )  # fmt: skip
            assert result.exit_code == 0, result.output
        # Both files changed on disk after they were indexed: they are stale.
        later = time.time() + 3600
        for changed in (tmp / "staff" / "pto.md", tmp / "hr" / "salaries.md"):
            os.utime(changed, (later, later))
        yield (
            gw,
            {
                "ada": gw.create_key(name="ada", role="admin"),
                "vera": gw.create_key(name="vera", role="viewer", metadata={"groups": ["staff"]}),
            },
        )


def test_collections_and_stale_documents(page: Page, rag_gw: tuple[ThreadedGateway, Any]) -> None:
    gw, keys = rag_gw
    sign_in(page, gw, keys["ada"], "/console/collections")
    row = page.locator("#collections tbody tr", has_text="handbook")
    expect(row).to_have_count(1)
    cells = row.locator("td")
    expect(cells.nth(0)).to_contain_text("stale")
    expect(cells.nth(1)).to_have_text("2")  # documents
    expect(cells.nth(2)).to_have_text("2")  # chunks
    expect(cells.nth(4)).to_contain_text("embed-local=minilm/all-minilm-l6-v2")
    expect(cells.nth(4)).to_contain_text("v1")
    expect(cells.nth(5)).to_have_text("2")  # stale
    expect(cells.nth(6)).to_have_text("0")  # orphans
    expect(cells.nth(7)).to_contain_text(time.strftime("%Y-%m-%d", time.gmtime()))
    shot(page, "80-collections")

    row.get_by_role("link", name="2").click()
    stale = page.locator("#stale-documents tbody tr")
    expect(stale).to_have_count(2)
    pto = stale.filter(has_text="pto.md")
    expect(pto).to_contain_text("source changed")
    expect(pto).to_contain_text("Paid leave")
    expect(stale.filter(has_text="salaries.md")).to_contain_text("source changed")
    expect(page.locator("#collection-status")).to_contain_text("Documents2")
    assert page.request.get(gw.url + "/console/collections/nope").status == 404


def test_search_playground_and_retrieval_spans(
    page: Page, browser: Browser, rag_gw: tuple[ThreadedGateway, Any]
) -> None:
    gw, keys = rag_gw
    # An admin reads every document: the hr-only page comes back in every mode, with text.
    sign_in(page, gw, keys["ada"], "/console/collections/handbook")
    expect(page.locator("#searching-as")).to_contain_text("every document (admin)")
    page.get_by_label("Query").fill("salary bands")
    page.get_by_label("k").fill("5")
    page.get_by_role("button", name="Search").click()
    for mode in ("dense", "keyword", "hybrid"):
        column = page.locator(f"#results-{mode}")
        expect(column).to_contain_text("salaries.md")
        expect(column).to_contain_text(SALARIES)
        expect(column.locator(".score").first).to_have_text(re.compile(r"^-?\d"))
    expect(page.locator("#results-keyword")).to_contain_text("under-filled")  # 1 match, k=5
    shot(page, "81-search-playground")

    # The search is a request of its own; its page shows the three retrieval spans.
    page.locator("#search-request a").click()
    expect(page.locator("section[id^=retrieval-]")).to_have_count(3)
    first = page.locator("#retrieval-1")
    expect(first).to_contain_text("handbook")
    expect(first).to_contain_text("dense")
    expect(first).to_contain_text("salary bands")  # the query, for an admin
    expect(first.locator("tbody")).to_contain_text("salaries.md")
    expect(page.locator("#retrieval-2")).to_contain_text("under-filled")
    shot(page, "82-request-retrieval")

    # A viewer with the staff group: never the hr page, at any k, in any mode; no text.
    viewer = browser.new_context().new_page()
    sign_in(viewer, gw, keys["vera"], "/console/collections/handbook?q=salary+bands&k=50")
    expect(viewer.locator("#searching-as")).to_contain_text("staff")
    # Stale documents: only those the viewer's groups may read; the hr one is only counted.
    expect(viewer.locator("#stale-documents tbody tr")).to_have_count(1)
    expect(viewer.locator("#stale-documents")).to_contain_text("pto.md")
    expect(viewer.locator("#stale-hidden")).to_contain_text("1 more stale document")
    for mode in ("dense", "keyword", "hybrid"):
        expect(viewer.locator(f"#results-{mode}")).not_to_contain_text("salaries.md")
    expect(viewer.locator("#results-dense")).to_contain_text("pto.md")
    assert PTO not in viewer.content() and SALARIES not in viewer.content()
    assert "Paid leave" not in viewer.content()  # titles come from the text: content too
    expect(viewer.locator("#search-request")).to_contain_text("hidden for the viewer role")
    shot(viewer, "83-search-playground-viewer")
    viewer.locator("#search-request a").click()
    expect(viewer.locator("#retrieval-1")).to_contain_text("hidden")
    expect(viewer.locator("#retrieval-1 tbody")).to_contain_text("pto.md")
    assert "salary bands" not in viewer.content()
    viewer.goto(gw.url + "/console/collections/handbook?q=x&k=0")
    expect(viewer.get_by_role("alert")).to_contain_text("“k” must be a whole number")
    viewer.context.close()
