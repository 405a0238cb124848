"""How the console shows values: exact money, UTC times, durations, token counts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from pilothouse.limits.money import pico_to_str


def utc(value: datetime | None) -> datetime | None:
    """Stored times are UTC; SQLite hands them back naive."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def when(value: datetime | None) -> str:
    moment = utc(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def when_short(value: datetime | None) -> str:
    """For tables whose header already says UTC."""
    moment = utc(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


def iso(value: datetime | None) -> str:
    moment = utc(value)
    return moment.isoformat() if moment else ""


def from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def usd(pico: int | None) -> str:
    """Exact dollars: every stored digit, never a float on the way."""
    if pico is None:
        return "—"
    text = pico_to_str(int(pico))
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}" if frac else f"${whole}.00"


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    if value >= 100:
        return f"{value:.0f} ms"
    return f"{value:.1f} ms"


def count(value: int | None) -> str:
    return "—" if value is None else f"{int(value):,}"


def share(part: int, whole: int) -> str:
    """A percentage of an exact total, for display (one decimal; "—" when there is no total)."""
    if not whole:
        return "—"
    return f"{100 * part / whole:.1f}%"


def status_class(status: int | None) -> str:
    if status is None:
        return "status-unknown"
    if status >= 500:
        return "status-5xx"
    if status >= 400:
        return "status-4xx"
    return "status-ok"


def pretty_json(value: Any) -> str:
    """Indented JSON for display (the template escapes it)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(value)


def scalar(value: Any) -> str:
    """One attribute value on one line."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "null"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


FILTERS = {
    "when": when,
    "when_short": when_short,
    "iso": iso,
    "usd": usd,
    "ms": ms,
    "count": count,
    "status_class": status_class,
    "share": share,
    "pretty_json": pretty_json,
    "scalar": scalar,
}
