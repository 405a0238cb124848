"""Usage and cost aggregates: exact sums per day and per model/key/team."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from pilothouse.console import usage, views
from pilothouse.console.usage import Totals, fill_days
from tests.unit.console.sample import XSS, Sample


async def test_daily_totals_are_exact_and_every_day_is_present(
    engine: AsyncEngine, sample: Sample
) -> None:
    since = sample.now - timedelta(days=6)
    report = await usage.daily(engine, since=since, until=None, now=sample.now)
    assert report.totals.requests == 8 and report.totals.errors == 3
    assert report.totals.cost_pico == sample.total_pico == 454_261_567_899
    labels = [day for day, _ in report.days]
    assert labels[0] == since.date().isoformat() and labels[-1] == sample.now.date().isoformat()
    assert len(labels) == 7  # zero days included
    assert sum(t.cost_pico for _, t in report.days) == sample.total_pico
    assert sum(t.requests for _, t in report.days) == 8


async def test_a_day_is_a_utc_day(engine: AsyncEngine, sample: Sample) -> None:
    report = await usage.daily(engine, since=None, until=None, now=sample.now)
    by_day = dict(report.days)
    for row in sample.usage:
        assert row["created_at"].astimezone(UTC).date().isoformat() in by_day


async def test_cost_by_model_key_and_team(engine: AsyncEngine, sample: Sample) -> None:
    names = {v: k for k, v in sample.keys.items()}
    models = await usage.breakdown(engine, "model", since=None, until=None)
    assert [(g.label, g.totals.cost_pico) for g in models] == [
        ("support-bot", sample.cost_pico(alias="support-bot")),
        ("summarize", sample.cost_pico(alias="summarize")),
    ]
    keys = await usage.breakdown(engine, "key", since=None, until=None, key_names=names)
    checkout = sample.keys["checkout-service"]
    assert keys[0].label == f"checkout-service ({checkout})"
    assert keys[0].totals.cost_pico == sample.cost_pico(key_id=checkout)
    assert keys[-1].label == "(no key)"
    teams = {
        g.label: g.totals for g in await usage.breakdown(engine, "team", since=None, until=None)
    }
    # The request's own team wins over its key's; otherwise the key's team counts.
    assert teams["research"].requests == 1 and teams[XSS].requests == 1
    assert teams["payments"].requests == 4 and teams["search"].requests == 1
    assert teams["(no team)"].requests == 1
    assert sum(t.cost_pico for t in teams.values()) == sample.total_pico
    users = {
        g.label: g.totals.requests
        for g in await usage.breakdown(engine, "user", since=None, until=None)
    }
    assert users["alice"] == 2 and users["bob"] == 2


async def test_the_range_limits_everything(engine: AsyncEngine, sample: Sample) -> None:
    since = sample.now - timedelta(hours=3)
    report = await usage.daily(engine, since=since, until=None, now=sample.now)
    assert report.totals.requests == 2
    groups = await usage.breakdown(engine, "feature", since=since, until=None)
    assert sorted(g.label for g in groups) == sorted(["support-chat", f'x">{XSS}'])


async def test_an_empty_store_reports_zeros(engine: AsyncEngine) -> None:
    report = await usage.daily(engine, since=None, until=None)
    assert report.totals == Totals() and report.days == []
    assert await usage.breakdown(engine, "team", since=None, until=None) == []
    assert views.cost_per_day(report.days).empty


def test_days_are_filled_between_the_range_ends() -> None:
    now = datetime(2025, 3, 10, 15, tzinfo=UTC)
    found = {"2025-03-08": Totals(requests=2)}
    days = fill_days(found, datetime(2025, 3, 7, tzinfo=UTC), None, now)
    assert [d for d, _ in days] == ["2025-03-07", "2025-03-08", "2025-03-09", "2025-03-10"]
    assert days[1][1].requests == 2 and days[0][1].requests == 0
    until = fill_days(
        found, datetime(2025, 3, 7, tzinfo=UTC), datetime(2025, 3, 9, tzinfo=UTC), now
    )
    assert [d for d, _ in until] == ["2025-03-07", "2025-03-08"]  # `until` is exclusive
    assert fill_days({}, None, None, now) == []
    huge = fill_days(found, datetime(2020, 1, 1, tzinfo=UTC), None, now)
    assert huge == [("2025-03-08", found["2025-03-08"])]  # too long to fill: data days only
