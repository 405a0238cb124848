"""How values read on the page: exact money, UTC, durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from pilothouse.console import formatting as f


def test_money_is_exact_to_the_pico_dollar() -> None:
    assert f.usd(1_234_567_891) == "$0.001234567891"
    assert f.usd(450_000_000_001) == "$0.450000000001"
    assert f.usd(7) == "$0.000000000007"
    assert f.usd(3 * 10**12) == "$3.00"
    assert f.usd(25 * 10**11) == "$2.50"
    assert f.usd(0) == "$0.00"
    assert f.usd(None) == "—"


def test_times_are_shown_in_utc_whatever_they_were_stored_as() -> None:
    naive = datetime(2025, 3, 1, 12, 0, 5)  # SQLite hands back naive UTC
    assert f.when(naive) == "2025-03-01 12:00:05 UTC"
    aware = datetime(2025, 3, 1, 14, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    assert f.when(aware) == "2025-03-01 12:00:05 UTC"
    assert f.iso(naive) == "2025-03-01T12:00:05+00:00"
    assert f.from_ns(0) == datetime(1970, 1, 1, tzinfo=UTC)


def test_durations_counts_and_shares() -> None:
    assert f.ms(None) == "—"
    assert f.ms(0.5) == "0.5 ms"
    assert f.ms(1450.0) == "1450 ms"
    assert f.ms(12_500.0) == "12.5 s"
    assert f.count(1234567) == "1,234,567"
    assert f.share(1, 3) == "33.3%"
    assert f.share(1, 0) == "—"
    assert f.scalar({"b": 1, "a": [True]}) == '{"a":[true],"b":1}'
    assert f.scalar(False) == "false"
