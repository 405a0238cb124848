"""The request log's filters: parsed from a query string, and written back as links.

Every bad value becomes a message for the page, never an exception; the query
that applies the filters lives in ``console/queries.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from pilothouse.console.guard_filter import VERDICTS
from pilothouse.console.search import MAX_QUERY_CHARS, words
from pilothouse.costs.usage_query import parse_time
from pilothouse.errors import InvalidRequestError
from pilothouse.limits.money import PICO_PER_USD

STATUS_CHOICES = (
    ("", "any"),
    ("ok", "succeeded"),
    ("error", "failed"),
    ("4xx", "4xx (client)"),
    ("5xx", "5xx (upstream)"),
)
_STATUS_WORDS = {value for value, _ in STATUS_CHOICES if value}
RANGE_PRESETS = (("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days"),
                 ("30d", "last 30 days"))  # fmt: skip
_PRESETS = {value for value, _ in RANGE_PRESETS}
_SPAN = re.compile(r"\d+\s*[a-zA-Z]+")
SORT_NAMES = ("time", "latency", "cost")  # queries.SORTS maps each to its column


@dataclass(frozen=True, slots=True)
class LogFilters:
    key_id: str | None = None
    alias: str | None = None
    status: str | None = None
    user: str | None = None
    feature: str | None = None
    session: str | None = None
    provider: str | None = None
    prompt: str | None = None
    cache: str | None = None  # "hit" | "miss"
    guard: str | None = None  # the guards page's drill-down (console/guard_filter.py)
    verdict: str | None = None
    entity: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    since_text: str = ""
    until_text: str = ""
    q: str | None = None  # full-text search over stored content (console/search.py)
    tag: str | None = None
    team: str | None = None
    latency_min: float | None = None
    latency_max: float | None = None
    cost_min: str | None = None  # exact USD strings, as typed
    cost_max: str | None = None
    range: str = ""  # a preset ("24h"), "custom", or "" (any time)
    sort: str = "time"
    order: str = "desc"

    def query_items(self, *, sorted_: bool = True) -> list[tuple[str, str]]:
        """The filters as URL parameters (for pagination, preset and sort links)."""
        custom = self.range not in _PRESETS
        items = [
            ("q", self.q or ""),
            ("key", self.key_id or ""),
            ("model", self.alias or ""),
            ("status", self.status or ""),
            ("user", self.user or ""),
            ("feature", self.feature or ""),
            ("session", self.session or ""),
            ("provider", self.provider or ""),
            ("prompt", self.prompt or ""),
            ("cache", self.cache or ""),
            ("tag", self.tag or ""),
            ("team", self.team or ""),
            ("latency_min", _num(self.latency_min)),
            ("latency_max", _num(self.latency_max)),
            ("cost_min", self.cost_min or ""),
            ("cost_max", self.cost_max or ""),
            ("guard", self.guard or ""),
            ("verdict", self.verdict or ""),
            ("entity", self.entity or ""),
            ("range", self.range),
            ("since", self.since_text if custom else ""),
            ("until", self.until_text if custom else ""),
        ]
        if sorted_ and (self.sort, self.order) != ("time", "desc"):
            items += [("sort", self.sort), ("order", self.order)]
        return [(k, v) for k, v in items if v]

    def without(self, *names: str) -> list[tuple[str, str]]:
        """The URL parameters minus some (a preset link replaces the time range)."""
        return [(k, v) for k, v in self.query_items() if k not in names]

    def sorted_by(self, sort: str) -> list[tuple[str, str]]:
        """Parameters sorting by ``sort``: descending first, a second click flips the order."""
        order = "asc" if (self.sort, self.order) == (sort, "desc") else "desc"
        return [*self.query_items(sorted_=False), ("sort", sort), ("order", order)]

    @property
    def active(self) -> bool:
        return bool(self.query_items(sorted_=False))

    @property
    def cost_min_pico(self) -> int | None:
        return _pico(self.cost_min)

    @property
    def cost_max_pico(self) -> int | None:
        return _pico(self.cost_max)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _pico(usd: str | None) -> int | None:
    return None if usd is None else int(Decimal(usd) * PICO_PER_USD)


@dataclass(slots=True)
class ParsedFilters:
    filters: LogFilters
    errors: list[str] = field(default_factory=list)


def _text(params: Mapping[str, str], name: str, limit: int = 200) -> str | None:
    value = (params.get(name) or "").strip()
    return value[:limit] or None


def _time(params: Mapping[str, str], name: str, errors: list[str]) -> tuple[datetime | None, str]:
    raw = (params.get(name) or "").strip()[:64]
    try:
        value = parse_time(raw, name)
    except InvalidRequestError:
        errors.append(f"“{name}” must be a span like 24h or 7d, or a UTC date/time; got {raw!r}.")
        return None, raw
    return (value.astimezone(UTC) if value else None), raw


def _number(params: Mapping[str, str], name: str, errors: list[str]) -> float | None:
    raw = (params.get(name) or "").strip()[:32]
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e12:
        errors.append(f"“{name}” must be a number of milliseconds, 0 or more; got {raw!r}.")
        return None
    return value


def _usd(params: Mapping[str, str], name: str, errors: list[str]) -> str | None:
    raw = (params.get(name) or "").strip().removeprefix("$")[:32]
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or not 0 <= value < 10**9 or value != round(value, 12):
        errors.append(f"“{name}” must be US dollars, 0 or more (e.g. 0.002); got {raw!r}.")
        return None
    return raw


def _hour(moment: datetime | None, raw: str) -> datetime | None:
    """Custom ranges have hourly granularity: a picked date/time is floored to its hour
    (a span such as ``90m`` ago is a moment relative to now and stays exact)."""
    if moment is None or _SPAN.fullmatch(raw.strip()):
        return moment
    return moment.replace(minute=0, second=0, microsecond=0)


def _time_range(
    params: Mapping[str, str], errors: list[str]
) -> tuple[str, datetime | None, datetime | None, str, str]:
    """``range`` (a preset or ``custom``) with ``since``/``until``; old ``since=24h`` links work."""
    chosen = (params.get("range") or "").strip()[:8]
    if chosen and chosen not in _PRESETS and chosen != "custom":
        errors.append(f"“range” must be one of 1h, 24h, 7d, 30d or custom; got {chosen!r}.")
        chosen = ""
    since_raw = (params.get("since") or "").strip()
    if not chosen and since_raw in _PRESETS and not params.get("until"):
        chosen = since_raw
    if chosen in _PRESETS:
        since = parse_time(chosen, "since")
        return chosen, since.astimezone(UTC) if since else None, None, chosen, ""
    since, since_text = _time(params, "since", errors)
    until, until_text = _time(params, "until", errors)
    if chosen == "custom":
        since, until = _hour(since, since_text), _hour(until, until_text)
        if since and until and since >= until:
            errors.append("The custom range's start must come before its end.")
    if not chosen and (since or until):
        chosen = "custom"
    return (
        chosen, since, until, since_text if since else "", until_text if until else ""
    )  # fmt: skip


def parse_filters(params: Mapping[str, str], *, may_search: bool = True) -> ParsedFilters:
    """Filters from the query string; bad values become messages, not 500s.

    ``may_search`` is false for the viewer role: a content search is refused, since
    which requests match a word would reveal content the role may not read.
    """
    errors: list[str] = []
    status = _text(params, "status", 8)
    if status and status not in _STATUS_WORDS and not (status.isdigit() and len(status) == 3):
        errors.append(f"“status” must be ok, error, 4xx, 5xx or a 3-digit code; got {status!r}.")
        status = None
    cache = _text(params, "cache", 8)
    if cache and cache not in ("hit", "miss"):
        errors.append(f"“cache” must be hit or miss; got {cache!r}.")
        cache = None
    chosen, since, until, since_text, until_text = _time_range(params, errors)
    q = _text(params, "q", MAX_QUERY_CHARS)
    if q and not may_search:
        errors.append("Your role may not search message content; the other filters apply.")
        q = None
    elif q and not words(q):
        errors.append(f"“q” must contain at least one word to search for; got {q!r}.")
        q = None
    sort = _text(params, "sort", 16) or "time"
    if sort not in SORT_NAMES:
        errors.append(f"“sort” must be time, latency or cost; got {sort!r}.")
        sort = "time"
    order = _text(params, "order", 8) or "desc"
    if order not in ("asc", "desc"):
        errors.append(f"“order” must be asc or desc; got {order!r}.")
        order = "desc"
    lat_min = _number(params, "latency_min", errors)
    lat_max = _number(params, "latency_max", errors)
    cost_min, cost_max = _usd(params, "cost_min", errors), _usd(params, "cost_max", errors)
    verdict = _text(params, "verdict", 16)
    if verdict and verdict not in VERDICTS:
        errors.append(f"“verdict” must be one of {', '.join(VERDICTS)}; got {verdict!r}.")
        verdict = None
    filters = LogFilters(
        key_id=_text(params, "key", 32),
        alias=_text(params, "model"),
        status=status,
        user=_text(params, "user"),
        feature=_text(params, "feature"),
        session=_text(params, "session"),
        provider=_text(params, "provider"),
        prompt=_text(params, "prompt"),
        cache=cache,
        guard=_text(params, "guard"),
        verdict=verdict,
        entity=_text(params, "entity", 64),
        since=since,
        until=until,
        since_text=since_text,
        until_text=until_text,
        q=q,
        tag=_text(params, "tag"),
        team=_text(params, "team"),
        latency_min=lat_min,
        latency_max=lat_max,
        cost_min=cost_min,
        cost_max=cost_max,
        range=chosen,
        sort=sort,
        order=order,
    )
    return ParsedFilters(filters, errors)
