"""The robust baseline: spikes alert with their numbers, noise and cents do not."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilothouse.costs.anomaly import assess, baseline_of, median, windows
from pilothouse.costs.config import AnomalyConfig
from pilothouse.limits.money import usd_to_pico

CFG = AnomalyConfig(threshold=5.0, min_spend_usd=Decimal("1"))


def usd(text: str) -> int:
    return usd_to_pico(text)


def test_median_is_exact_for_even_and_odd_counts() -> None:
    assert median([3, 1, 2]) == 2
    assert median([1, 2]) == Fraction(3, 2)
    with pytest.raises(ValueError):
        median([])


def test_a_tenfold_hour_is_an_anomaly_with_the_numbers_that_show_it() -> None:
    history = [usd(x) for x in ("4.0", "5.0", "4.5", "5.5", "5.0", "4.0", "6.0")]
    a = assess("key", "k1", usd("50"), history, CFG)
    assert a.anomalous
    assert a.median_pico == usd("5")
    assert a.mad_pico == usd("0.5")  # |x - 5| sorted: 0 0 .5 .5 1 1 1
    assert a.scale_pico == Fraction(14826, 10000) * usd("0.5")
    assert a.z == pytest.approx(45 / (1.4826 * 0.5))
    assert a.samples == 7


def test_ordinary_variation_is_not_an_anomaly() -> None:
    history = [usd(x) for x in ("4.0", "5.0", "4.5", "5.5", "5.0", "4.0", "6.0")]
    assert not assess("key", "k1", usd("7"), history, CFG).anomalous
    assert not assess("key", "k1", usd("0"), history, CFG).anomalous  # drops never alert


def test_one_past_spike_does_not_hide_the_next_one() -> None:
    """A mean/stddev baseline would be inflated by day 3's incident; the median is not."""
    history = [usd(x) for x in ("5", "5.2", "400", "4.8", "5.1", "4.9", "5")]
    a = assess("key", "k1", usd("60"), history, CFG)
    assert a.anomalous
    assert a.median_pico == usd("5")


def test_flat_history_needs_a_rise_of_min_spend_not_a_fraction_of_a_cent() -> None:
    flat = [usd("0.20")] * 7  # MAD = 0: the floor min_spend / threshold is the scale
    small = assess("key", "k1", usd("1.10"), flat, CFG)
    assert small.scale_pico == Fraction(usd("1"), 5)
    assert not small.anomalous  # rose by 0.90 < min_spend
    big = assess("key", "k1", usd("1.20"), flat, CFG)
    assert big.anomalous  # rose by exactly min_spend: z == threshold
    assert big.z == pytest.approx(5.0)


@settings(max_examples=300, deadline=None)
@given(
    history=st.lists(st.integers(0, usd("100")), min_size=1, max_size=30),
    rise=st.integers(-usd("100"), usd("1") - 1),
)
def test_a_rise_below_min_spend_never_alerts(history: list[int], rise: int) -> None:
    observed = max(0, int(median(history)) + rise)
    assert not assess("key", "k", observed, history, CFG).anomalous


@settings(max_examples=300, deadline=None)
@given(history=st.lists(st.integers(0, usd("100")), min_size=1, max_size=30))
def test_a_rise_past_both_bars_always_alerts(history: list[int]) -> None:
    """Past threshold x sigma *and* past min_spend: an alert, whatever the history."""
    med = median(history)
    mad = median([abs(x - med) for x in history])
    bar = max(Fraction(14826, 10000) * mad * 5, Fraction(usd("1")))
    observed = math.ceil(med + bar)
    assert assess("key", "k", observed, history, CFG).anomalous


def test_windows_are_the_last_hour_and_the_same_hour_on_earlier_days() -> None:
    now = datetime(2031, 3, 14, 15, 30, tzinfo=UTC)
    spans = windows(now, 3)
    assert spans[0] == (now - timedelta(hours=1), now)
    assert spans[3] == (now - timedelta(days=3, hours=1), now - timedelta(days=3))
    assert len(spans) == 4


def test_baseline_starts_at_the_first_day_a_subject_spent() -> None:
    s = ("key", "new")
    # index 0 = now, 1 = yesterday, ... 5 = five days ago; absent = no requests that hour
    spend = [{s: 90}, {s: 10}, {}, {s: 12}, {}, {}]
    assert baseline_of(spend, s) == [12, 0, 10]  # day 4 and 5 predate the key
    assert baseline_of(spend, ("key", "other")) == []
