"""Compile ``routing.rules`` once into plain predicates; evaluate them per request.

Every condition field is known here and nowhere else. Compilation is where a
config mistake fails (unknown field, operator or alias, named by its rule);
evaluation only reads :class:`~pilothouse.routing.features.Features`, so a
decision costs a few attribute reads and comparisons.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pilothouse.routing.config import RuleConfig
from pilothouse.routing.features import CAPABILITIES, Features

NUMERIC_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "ne": operator.ne,
}
VALUE_OPS = ("eq", "ne", "in", "not_in", "exists")
FIELDS = (
    "metadata.<field>",
    "key.id",
    "key.name",
    "key.team",
    "key.metadata.<field>",
    "input_tokens",
    "requires",
    "budget_used",
    "difficulty",
    "time",
)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Features that cost an await (budget state, a router plugin): loaded only when reached.
LAZY = ("budget_used", "difficulty")


class RuleError(ValueError):
    """A rule that cannot be compiled; the message names the rule and the field."""


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    test: Callable[[Features], bool]
    describe: Callable[[Features], str]
    needs: str | None = None  # a LAZY feature


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    use: str
    conditions: tuple[Condition, ...]
    needs: tuple[str, ...]

    def matches(self, f: Features) -> bool:
        return all(cond.test(f) for cond in self.conditions)

    def reason(self, f: Features) -> str:
        if not self.conditions:
            return "always"
        return ", ".join(c.describe(f) for c in self.conditions)


def rule_name(rule: RuleConfig, index: int) -> str:
    return rule.name or f"rules[{index}]"


def compile_rules(rules: list[RuleConfig]) -> tuple[CompiledRule, ...]:
    out = []
    for i, rule in enumerate(rules):
        name = rule_name(rule, i)
        conds = []
        for field, spec in rule.when.items():
            try:
                conds.append(_condition(str(field), spec))
            except RuleError as exc:
                raise RuleError(f"rule {name!r}: {exc}") from None
        needs = tuple(dict.fromkeys(c.needs for c in conds if c.needs))
        out.append(CompiledRule(name, rule.use, tuple(conds), needs))
    return tuple(out)


def _condition(field: str, spec: Any) -> Condition:
    if field.startswith("metadata.") and len(field) > 9:
        name = field[9:]
        return _value_condition(field, spec, lambda f: (f.metadata or {}).get(name))
    if field.startswith("key.metadata.") and len(field) > 13:
        name = field[13:]
        return _value_condition(field, spec, lambda f: f.key_metadata.get(name))
    if field == "key.id":
        return _value_condition(field, spec, lambda f: f.key_id)
    if field == "key.name":
        return _value_condition(field, spec, lambda f: f.key_name)
    if field == "key.team":
        return _value_condition(field, spec, lambda f: f.key_metadata.get("team"))
    if field == "input_tokens":
        return _numeric_condition(field, spec, lambda f: f.input_tokens)
    if field == "budget_used":
        return _numeric_condition(field, spec, lambda f: f.budget_used, needs="budget_used")
    if field == "difficulty":
        return _numeric_condition(field, spec, lambda f: f.difficulty, needs="difficulty")
    if field == "requires":
        return _requires_condition(spec)
    if field == "time":
        return _time_condition(spec)
    raise RuleError(f"unknown condition field `{field}` (fields: {', '.join(FIELDS)})")


def _value_condition(field: str, spec: Any, get: Callable[[Features], Any]) -> Condition:
    if isinstance(spec, dict):
        if len(spec) != 1:
            raise RuleError(f"`{field}` takes one operator ({', '.join(VALUE_OPS)})")
        op, arg = next(iter(spec.items()))
        if op not in VALUE_OPS:
            raise RuleError(f"`{field}`: unknown operator `{op}` (use {', '.join(VALUE_OPS)})")
    elif isinstance(spec, list):
        op, arg = "in", spec
    else:
        op, arg = "eq", spec
    if op in ("in", "not_in"):
        if not isinstance(arg, list) or not arg:
            raise RuleError(f"`{field}`: `{op}` takes a non-empty list")
        allowed = frozenset(_text(a) for a in arg)
        hit = op == "in"

        def test(f: Features) -> bool:
            value = get(f)
            return (value is not None and _text(value) in allowed) is hit

    elif op == "exists":
        want = bool(arg)

        def test(f: Features) -> bool:
            return (get(f) is not None) is want

    else:
        if isinstance(arg, (dict, list)):
            raise RuleError(f"`{field}`: `{op}` takes a single value")
        expected, equal = _text(arg), op == "eq"

        def test(f: Features) -> bool:
            value = get(f)
            return (value is not None and _text(value) == expected) is equal

    def describe(f: Features) -> str:
        return f"{field}={_text(get(f))}"

    return Condition(field, test, describe)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _numeric_condition(
    field: str, spec: Any, get: Callable[[Features], float | None], needs: str | None = None
) -> Condition:
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        spec = {"eq": spec}
    if not isinstance(spec, dict) or not spec:
        raise RuleError(f"`{field}` takes comparisons, e.g. {{gt: 0.5}} ({', '.join(NUMERIC_OPS)})")
    checks: list[tuple[str, Callable[[Any, Any], bool], float]] = []
    for op, arg in spec.items():
        if op not in NUMERIC_OPS:
            raise RuleError(f"`{field}`: unknown operator `{op}` (use {', '.join(NUMERIC_OPS)})")
        if not isinstance(arg, (int, float)) or isinstance(arg, bool):
            raise RuleError(f"`{field}.{op}` must be a number, got {arg!r}")
        checks.append((op, NUMERIC_OPS[op], float(arg)))
    if field in ("budget_used", "difficulty"):
        for op, _fn, arg in checks:
            if not 0.0 <= arg <= 1.0:
                raise RuleError(f"`{field}.{op}` is a share between 0 and 1, got {arg}")

    def test(f: Features) -> bool:
        value = get(f)
        if value is None:
            return False  # unknown (no budget, no key): the condition does not hold
        return all(fn(value, arg) for _op, fn, arg in checks)

    def describe(f: Features) -> str:
        value = get(f)
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        return " and ".join(f"{field}={shown} {op} {arg:g}" for op, _fn, arg in checks)

    return Condition(field, test, describe, needs)


def _requires_condition(spec: Any) -> Condition:
    if isinstance(spec, str):
        spec = [spec]
    if not isinstance(spec, list) or not spec:
        raise RuleError(f"`requires` takes a list of capabilities ({', '.join(CAPABILITIES)})")
    unknown = [c for c in spec if c not in CAPABILITIES]
    if unknown:
        raise RuleError(
            f"`requires`: unknown capability {unknown[0]!r} (known: {', '.join(CAPABILITIES)})"
        )
    wanted = frozenset(spec)

    def test(f: Features) -> bool:
        return wanted <= f.requires

    def describe(f: Features) -> str:
        return "requires " + ",".join(sorted(wanted))

    return Condition("requires", test, describe)


def _time_condition(spec: Any) -> Condition:
    if not isinstance(spec, dict):
        raise RuleError("`time` takes {start: 'HH:MM', end: 'HH:MM', days: [mon…], tz: UTC}")
    unknown = sorted(set(spec) - {"start", "end", "days", "tz"})
    if unknown:
        raise RuleError(f"`time`: unknown key `{unknown[0]}` (start, end, days, tz)")
    try:
        zone: tzinfo = ZoneInfo(str(spec["tz"])) if "tz" in spec else UTC
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleError(f"`time.tz`: unknown time zone {spec['tz']!r}") from None
    start = _clock(spec.get("start", "00:00"), "start")
    end = _clock(spec.get("end", "24:00"), "end")
    days = spec.get("days")
    if days is not None:
        if not isinstance(days, list) or any(d not in DAYS for d in days):
            raise RuleError(f"`time.days` is a list of {', '.join(DAYS)}")
        day_set = frozenset(DAYS.index(d) for d in days)
    else:
        day_set = frozenset(range(7))

    def local(f: Features) -> datetime:
        return (f.now or datetime.now(UTC)).astimezone(zone)

    def test(f: Features) -> bool:
        now = local(f)
        minute = now.hour * 60 + now.minute
        if start <= end:
            return now.weekday() in day_set and start <= minute < end
        # An overnight window (22:00-06:00) belongs to the day it started on.
        if minute >= start:
            return now.weekday() in day_set
        return minute < end and (now.weekday() - 1) % 7 in day_set

    def describe(f: Features) -> str:
        return f"time={local(f).strftime('%a %H:%M')}"

    return Condition("time", test, describe)


def _clock(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1440:
        return value  # YAML 1.1 reads an unquoted 09:30 as sexagesimal 570: minutes already
    text = str(value)
    try:
        hours, minutes = text.split(":")
        h, m = int(hours), int(minutes)
    except ValueError:
        raise RuleError(f"`time.{name}` must be HH:MM, got {value!r}") from None
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise RuleError(f"`time.{name}` must be HH:MM, got {value!r}")
    return h * 60 + m
