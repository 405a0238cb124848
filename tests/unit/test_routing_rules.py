"""Routing rules compile once, fail loudly on mistakes and decide like the docs say."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from pilothouse.config.load import parse_settings
from pilothouse.errors import ConfigError
from pilothouse.routing.config import RuleConfig
from pilothouse.routing.difficulty import BaselineDifficulty
from pilothouse.routing.features import Features, request_needs
from pilothouse.routing.rules import RuleError, compile_rules


def rule(when: dict[str, Any]) -> Any:
    [compiled] = compile_rules([RuleConfig(use="x", when=when)])
    return compiled


def body(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": [{"role": "user", "content": text}], **extra}


def test_numeric_and_value_operators() -> None:
    f = Features(body("word " * 100), {"team": "legal", "n": 3}, None)
    assert rule({"input_tokens": {"gt": 100, "lte": 200}}).matches(f)
    assert not rule({"input_tokens": {"lt": 50}}).matches(f)
    assert rule({"metadata.team": {"in": ["legal", "hr"]}}).matches(f)
    assert not rule({"metadata.team": {"not_in": ["legal"]}}).matches(f)
    assert rule({"metadata.n": 3}).matches(f), "metadata values compare as text"
    assert rule({"metadata.missing": {"exists": False}}).matches(f)
    assert not rule({"metadata.missing": "x"}).matches(f)
    assert not rule({"budget_used": {"gt": 0.1}}).matches(f), "unknown budget share: no match"


def test_time_windows_including_overnight() -> None:
    wed_23h = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)  # a Wednesday
    thu_03h = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
    night = rule({"time": {"start": "22:00", "end": "06:00", "days": ["wed"]}})
    assert night.matches(Features(body(), None, None, now=wed_23h))
    assert night.matches(Features(body(), None, None, now=thu_03h)), "the night began on wed"
    assert not night.matches(
        Features(body(), None, None, now=datetime(2026, 12, 3, 23, 0, tzinfo=UTC))
    )
    office = rule({"time": {"start": 540, "end": "17:00", "tz": "Europe/Berlin"}})  # YAML 09:00
    assert office.matches(
        Features(body(), None, None, now=datetime(2026, 12, 2, 8, 30, tzinfo=UTC))
    )
    assert not office.matches(Features(body(), None, None, now=wed_23h))


def test_requires_reads_the_request() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    image = [{"type": "image_url", "image_url": {"url": "data:,"}}]
    assert request_needs(body(tools=tools)) == {"tools"}
    assert request_needs({"messages": [{"role": "user", "content": image}]}) == {"vision"}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    assert request_needs(body(response_format=fmt)) == {"json_schema"}


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ({"colour": "red"}, "unknown condition field `colour`"),
        ({"input_tokens": {"about": 3}}, "unknown operator `about`"),
        ({"input_tokens": {"gt": "many"}}, "must be a number"),
        ({"budget_used": {"gt": 80}}, "share between 0 and 1"),
        ({"requires": ["telepathy"]}, "unknown capability 'telepathy'"),
        ({"time": {"start": "9am"}}, "must be HH:MM"),
        ({"time": {"tz": "Mars/Olympus"}}, "unknown time zone"),
    ],
)
def test_mistakes_name_the_rule(when: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError, match="rule 'careful'") as exc:
        compile_rules([RuleConfig(use="x", when=when, name="careful")])
    assert message in str(exc.value)


def _models(**chat: Any) -> dict[str, Any]:
    return {
        "providers": {"c": {"type": "chaos"}},
        "models": {"chat": chat, "small": {"targets": [{"provider": "c", "model": "m"}]}},
    }


@pytest.mark.parametrize(
    ("chat", "where"),
    [
        ({"routing": {"strategy": "rules", "rules": [{"use": "nope"}], "default": "small"}},
         "models.chat.routing.rules[0].use: rule 'rules[0]': unknown model alias 'nope'"),
        ({"routing": {"strategy": "rules", "rules": [{"use": "small"}]}},
         "models.chat.routing.default: needed when the alias has no targets"),
        ({"routing": {"strategy": "rules", "rules": [{"use": "chat"}], "default": "small"}},
         "cannot point at `chat` itself"),
        ({"routing": {"strategy": "weighted"}}, "models.chat.targets: needs at least one target"),
        ({"targets": [{"provider": "c", "model": "m"}], "degrade": {"when_all_open": "gone"}},
         "models.chat.degrade.when_all_open: unknown model alias 'gone'"),
        ({"routing": {"strategy": "rules", "rules": [{"use": "small", "when": {"x": 1}}],
                      "default": "small"}},
         "models.chat.routing.rules[0].when: rule 'rules[0]': unknown condition field `x`"),
    ],
)  # fmt: skip
def test_config_errors_name_the_key_path(chat: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_settings(_models(**chat), source="t.yaml")
    assert where in exc.value.message


def test_baseline_difficulty_orders_easy_below_hard() -> None:
    scorer = BaselineDifficulty()
    easy = asyncio.run(scorer.score(body("hi, thanks!")))
    hard = asyncio.run(
        scorer.score(body("Prove step by step why this algorithm's complexity is optimal. " * 5))
    )
    assert 0 <= easy < 0.3 < hard <= 1
