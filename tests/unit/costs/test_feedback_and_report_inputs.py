"""Feedback bodies and report parameters: precise 400s, exact money."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.costs.feedback import validate_feedback
from pilothouse.costs.report import parse_groups, per_success_pico
from pilothouse.errors import InvalidRequestError


def test_a_full_feedback_body_is_accepted() -> None:
    item = validate_feedback(
        {
            "request_id": "req_1",
            "success": True,
            "score": 4,
            "comment": "solved it",
            "metadata": {"rater": "user"},
        }
    )
    assert (item.request_id, item.task_id, item.success, item.score) == ("req_1", None, True, 4.0)
    assert validate_feedback({"task_id": "t-9", "success": False}).task_id == "t-9"


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ([1], None, "must be a JSON object, got list"),
        ({"success": True}, "request_id", "needs `request_id` or `task_id`"),
        ({"task_id": "t"}, "success", "at least one of `success`, `score` or `comment`"),
        ({"task_id": "t", "success": "yes"}, "success", "`success` must be true or false, got str"),
        ({"task_id": "t", "success": 1}, "success", "must be true or false, got int"),
        ({"task_id": "t", "score": True}, "score", "`score` must be a number, got bool"),
        ({"task_id": "t", "score": "5"}, "score", "`score` must be a number, got str"),
        ({"task_id": "", "success": True}, "task_id", "non-empty string"),
        ({"request_id": 7, "success": True}, "request_id", "non-empty string, got int"),
        ({"task_id": "t" * 201, "success": True}, "task_id", "201 characters; the limit is 200"),
        ({"task_id": "t", "comment": "c" * 2001}, "comment", "the limit is 2000"),
        ({"task_id": "t", "success": True, "metadata": []}, "metadata", "must be an object"),
        ({"task_id": "t", "sucess": True}, "sucess", "unknown field(s): sucess"),
        ({"task_id": "t\x00", "success": True}, "task_id", "must not contain NUL"),
    ],
)
def test_bad_bodies_are_precise(body: Any, param: str | None, message: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        validate_feedback(body)
    assert info.value.status == 400
    assert info.value.param == param
    assert message in info.value.message


def test_groups_parse_in_order_without_duplicates() -> None:
    assert parse_groups("team, model,team,,day") == ["team", "model", "day"]
    assert parse_groups(None) == []
    with pytest.raises(InvalidRequestError) as info:
        parse_groups("team,region")
    assert info.value.param == "by"
    assert "'region'" in info.value.message
    assert (
        "key, team, user, feature, model, provider, upstream_model, prompt, day"
        in info.value.message
    )


def test_cost_per_success_rounds_half_up_to_the_pico() -> None:
    assert per_success_pico(10, 4) == 3  # 2.5 -> 3
    assert per_success_pico(10, 3) == 3  # 3.33 -> 3
    assert per_success_pico(11, 3) == 4  # 3.67 -> 4
    assert per_success_pico(10**12, 3) == 333_333_333_333
    assert per_success_pico(500, 0) is None
