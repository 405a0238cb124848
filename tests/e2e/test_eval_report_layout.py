"""The eval HTML report in Chromium: wide slice tables stay inside the page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from pilothouse.evals.reports import html as html_report
from tests.unit.evals.evalkit import record, verdict
from tests.unit.evals.test_reports import report_data

SCORERS = [
    "exact",
    "contains_answer_text",
    "regex_format_check",
    "json_schema_field_accuracy",
    "numeric_tolerance",
    "grounded_in_context",
    "judge_helpfulness_rubric",
    "python_refusal_check",
]


def wide_run():  # type: ignore[no-untyped-def]
    topics = {f"c{i}": {"topic": f"a-rather-long-topic-name-{i % 4}"} for i in range(12)}
    run = record({c: [i % 3 != 0] for i, c in enumerate(topics)}, metadata=topics)
    run.info.scorers = SCORERS
    for i, sample in enumerate(run.samples):
        sample.verdicts += [verdict(s, (i + j) % 2 == 0) for j, s in enumerate(SCORERS[1:])]
    return run


OVERFLOW = """(selector) => {
    const limit = document.body.getBoundingClientRect().right + 0.5;
    return {
        page: document.documentElement.scrollWidth - window.innerWidth,
        outside: [...document.querySelectorAll(selector)]
            .filter(el => el.getBoundingClientRect().right > limit).length,
    };
}"""


@pytest.mark.parametrize("width", [1400, 820])
def test_slice_tables_fit_the_report(page: Page, width: int) -> None:
    """Eight scorers' columns fit the page width: headers wrap, nothing runs off the side."""
    page.set_viewport_size({"width": width, "height": 900})
    page.set_content(html_report.render(report_data(wide_run())))
    assert page.locator("h2", has_text="By metadata.topic").count() == 1
    assert page.evaluate(OVERFLOW, "table") == {"page": 0, "outside": 0}


def test_narrow_window_scrolls_inside_boxes_not_the_page(page: Page) -> None:
    page.set_viewport_size({"width": 500, "height": 900})
    page.set_content(html_report.render(report_data(wide_run())))
    assert page.evaluate(OVERFLOW, ".scroll, svg") == {"page": 0, "outside": 0}
