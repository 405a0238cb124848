"""Budget alerts: each threshold once per period, before requests fail, never flapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pilothouse.costs.budget_alerts import BudgetAlerts
from pilothouse.limits.keys import KeyRecord
from pilothouse.limits.money import usd_to_pico
from pilothouse.telemetry.alerts import Alert, AlertManager

DAY1 = datetime(2031, 3, 14, 9, 0, tzinfo=UTC)


def key(budget_usd: str | None = "10", period: str = "day", **extra: Any) -> KeyRecord:
    return KeyRecord(
        id="key_1",
        name="search-prod",
        prefix="ph-abc",
        scopes=frozenset({"inference"}),
        models=None,
        rpm=None,
        tpm=None,
        budget_pico=usd_to_pico(budget_usd) if budget_usd is not None else None,
        budget_period=period,
        **extra,
    )


def watcher() -> tuple[BudgetAlerts, list[Alert]]:
    sent: list[Alert] = []
    # No engine needed for observe(): it does no I/O.
    return BudgetAlerts(None, [1.0, 0.5, 0.8], AlertManager(sinks=[sent.append])), sent  # type: ignore[arg-type]


def brief(alerts: list[Alert]) -> list[tuple[str, str, str]]:
    return [(a.status, a.labels["threshold"], a.labels["period"]) for a in alerts]


def test_each_threshold_fires_once_as_spend_grows() -> None:
    watch, sent = watcher()
    k = key()
    for spent in ("1", "4.99", "5", "6", "7.99"):
        watch.observe(k, usd_to_pico(spent), DAY1)
    assert brief(sent) == [("firing", "50%", "d:2031-03-14")]
    watch.observe(k, usd_to_pico("8"), DAY1)
    watch.observe(k, usd_to_pico("9.5"), DAY1)
    watch.observe(k, usd_to_pico("10"), DAY1)
    watch.observe(k, usd_to_pico("10"), DAY1)
    assert brief(sent) == [
        ("firing", "50%", "d:2031-03-14"),
        ("firing", "80%", "d:2031-03-14"),
        ("firing", "100%", "d:2031-03-14"),
    ]
    first, _, exhausted = sent
    assert first.severity == "ticket" and exhausted.severity == "page"
    assert "spent 5 USD of its 10 USD daily budget (50.0%)" in first.summary
    assert "search-prod" in first.summary
    assert "refused with 429" in exhausted.summary
    assert first.values == {"spent_usd": 5.0, "budget_usd": 10.0, "fraction": 0.5, "threshold": 0.5}


def test_thresholds_hold_at_exactly_the_written_fraction() -> None:
    """0.8 x 1 USD is 0.8 USD, not 0.80000000000000004 USD (the float's true value)."""
    watch, sent = watcher()
    k = key("1")
    watch.observe(k, usd_to_pico("0.8") - 1, DAY1)
    assert [a.labels["threshold"] for a in sent] == ["50%"]
    watch.observe(k, usd_to_pico("0.8"), DAY1)
    assert [a.labels["threshold"] for a in sent] == ["50%", "80%"]


def test_a_jump_past_several_thresholds_fires_each_of_them() -> None:
    watch, sent = watcher()
    watch.observe(key(), usd_to_pico("9"), DAY1)
    assert [a.labels["threshold"] for a in sent] == ["50%", "80%"]


def test_a_stale_lower_reading_does_not_resolve() -> None:
    """The ledger can lag the in-memory counter; that must not flap the alert."""
    watch, sent = watcher()
    watch.observe(key(), usd_to_pico("8.5"), DAY1)
    watch.observe(key(), usd_to_pico("4"), DAY1)
    watch.observe(key(), usd_to_pico("8.6"), DAY1)
    assert [a.status for a in sent] == ["firing", "firing"]


def test_a_new_period_resolves_the_old_alerts_and_arms_them_again() -> None:
    watch, sent = watcher()
    watch.observe(key(), usd_to_pico("8.5"), DAY1)
    day2 = DAY1 + timedelta(days=1)
    watch.observe(key(), usd_to_pico("0.1"), day2)
    assert brief(sent[2:]) == [
        ("resolved", "50%", "d:2031-03-14"),
        ("resolved", "80%", "d:2031-03-14"),
    ]
    assert sent[2].fingerprint == sent[0].fingerprint  # receivers can pair them
    assert "period d:2031-03-14 ended" in sent[2].summary
    watch.observe(key(), usd_to_pico("5"), day2)
    assert brief(sent[4:]) == [("firing", "50%", "d:2031-03-15")]


def test_total_budgets_never_roll_over() -> None:
    watch, sent = watcher()
    k = key(period="total")
    watch.observe(k, usd_to_pico("6"), DAY1)
    watch.observe(k, usd_to_pico("6"), DAY1 + timedelta(days=400))
    assert brief(sent) == [("firing", "50%", "total")]


def test_a_raised_budget_clears_what_no_longer_holds() -> None:
    watch, sent = watcher()
    watch.observe(key("10"), usd_to_pico("8.5"), DAY1)
    watch.observe(key("12"), usd_to_pico("8.5"), DAY1)
    assert brief(sent[2:]) == [("resolved", "80%", "d:2031-03-14")]
    assert "budget changed" in sent[2].summary


def test_keys_without_a_positive_budget_are_silent_and_forget_resolves() -> None:
    watch, sent = watcher()
    watch.observe(key(None), usd_to_pico("100"), DAY1)
    watch.observe(key("0"), usd_to_pico("100"), DAY1)  # a zero budget is a blocked key
    assert sent == []
    watch.observe(key(), usd_to_pico("6"), DAY1)
    watch.forget("key_1", DAY1, reason="the key was revoked")
    assert brief(sent) == [("firing", "50%", "d:2031-03-14"), ("resolved", "50%", "d:2031-03-14")]
    assert watch.forget("key_1", DAY1, reason="again") == []
