"""SLOTracker and the SLO config: numbers `pilothouse slo status` shows, on scripted time."""

from __future__ import annotations

import msgspec
import pytest
import yaml

from pilothouse.telemetry.config import (
    DEFAULT_BURN_ALERTS,
    BurnAlertConfig,
    SLOConfig,
    SLOSettings,
    parse_duration,
)
from pilothouse.telemetry.slo import SLOTracker, is_good_event, latency_thresholds

T0 = 1_700_000_000.0 - (1_700_000_000.0 % 60)  # a minute boundary
MIN = 60.0
AVAIL = SLOConfig(name="chat-av", alias="chat", objective=0.995)
LAT = SLOConfig(
    name="chat-lat", alias="chat", sli="latency", objective=0.99, latency_threshold_s=2.0
)


def traffic(
    tracker: SLOTracker, start: float, minutes: int, ok: int, bad: int, alias: str = "chat"
) -> None:
    """Per minute: ``ok`` fast 200s and ``bad`` slow 502s."""
    for m in range(minutes):
        at = start + m * MIN + 1
        for _ in range(ok):
            tracker.record(alias, 200, 0.5, at=at)
        for _ in range(bad):
            tracker.record(alias, 502, 5.0, at=at)


def test_config_is_strict_and_reads_like_prometheus() -> None:
    text = """
objectives:
  - {name: chat-av, alias: chat, objective: 0.999, window: 28d}
  - {name: chat-lat, alias: chat, sli: latency, latency_threshold_s: 2.5}
"""
    settings = msgspec.convert(yaml.safe_load(text), SLOSettings)
    assert settings.objectives[0].window == "28d"
    assert settings.alerts == list(DEFAULT_BURN_ALERTS)
    assert parse_duration("28d") == 28 * 86400
    bad_inputs = [
        {"objectives": [{"name": "x", "alias": "a", "objective": 1.0}]},
        {"objectives": [{"name": "x", "alias": "a", "sli": "latency"}]},
        {"objectives": [{"name": "x", "alias": "a", "latency_threshold_s": 1.0}]},
        {"objectives": [{"name": "x", "alias": "a", "window": "30 days"}]},
        {"objectives": [{"name": "x", "alias": "a", "window": "90s"}]},
        {"objectives": [{"name": "x", "alias": "a", "typo": 1}]},
        {"objectives": [{"name": "x", "alias": "a"}, {"name": "x", "alias": "b"}]},
        {
            "alerts": [
                {
                    "name": "f",
                    "severity": "page",
                    "burn_rate": 2,
                    "long_window": "5m",
                    "short_window": "1h",
                }
            ]
        },
    ]
    for raw in bad_inputs:
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(raw, SLOSettings)


def test_good_event_definitions() -> None:
    assert is_good_event(AVAIL, 200, 99.0)
    assert is_good_event(AVAIL, 429, 0.1)  # the caller's limit, not our failure
    assert not is_good_event(AVAIL, 503, 0.1)
    assert is_good_event(LAT, 502, 2.0)  # threshold is inclusive, like a histogram bucket
    assert not is_good_event(LAT, 200, 2.01)
    assert latency_thresholds([AVAIL, LAT, LAT]) == (2.0,)


def test_sli_budget_and_burn_rates() -> None:
    tracker = SLOTracker([AVAIL, LAT])
    traffic(tracker, T0, minutes=60, ok=99, bad=1)  # 1% errors, 1% slow
    now = T0 + 60 * MIN
    by_name = {s.name: s for s in tracker.status(now)}
    av = by_name["chat-av"]
    assert (av.good, av.total) == (5940, 6000)
    assert av.sli_value == pytest.approx(0.99)
    # 1% errors against a 0.5% budget: burning 2x, so the 30-day budget is already overspent.
    assert av.burn_rates["1h"] == pytest.approx(2.0)
    assert av.error_budget_remaining == pytest.approx(-1.0)
    lat = by_name["chat-lat"]
    assert lat.burn_rates["1h"] == pytest.approx(1.0)
    assert lat.error_budget_remaining == pytest.approx(0.0)
    assert set(av.burn_rates) == {"5m", "30m", "1h", "6h", "3d"}


def test_windows_only_count_their_own_minutes() -> None:
    tracker = SLOTracker([AVAIL])
    traffic(tracker, T0, minutes=30, ok=90, bad=10)
    traffic(tracker, T0 + 30 * MIN, minutes=30, ok=100, bad=0)
    now = T0 + 60 * MIN
    assert tracker.counts("chat-av", "5m", now) == (500, 500)
    assert tracker.counts("chat-av", "1h", now) == (5700, 6000)
    assert tracker.burn_rate("chat-av", "5m", now) == 0.0
    assert tracker.burn_rate("chat-av", "1h", now) == pytest.approx(10.0)
    # Six hours later nothing of this is left in the 5 m or 1 h windows.
    later = now + 6 * 3600
    assert tracker.counts("chat-av", "1h", later) == (0, 0)
    assert tracker.counts("chat-av", "30d", later) == (5700, 6000)


def test_no_traffic_means_no_burn_and_full_budget() -> None:
    tracker = SLOTracker([AVAIL])
    (status,) = tracker.status(T0)
    assert status.sli_value is None
    assert status.error_budget_remaining == 1.0
    assert all(rate == 0.0 for rate in status.burn_rates.values())


def test_other_aliases_are_ignored() -> None:
    tracker = SLOTracker([AVAIL])
    traffic(tracker, T0, minutes=5, ok=0, bad=10, alias="embed")
    assert tracker.counts("chat-av", "1h", T0 + 5 * MIN) == (0, 0)


def test_injected_clock_is_used_when_no_time_is_given() -> None:
    now = [T0]
    tracker = SLOTracker([AVAIL], clock=lambda: now[0])
    tracker.record("chat", 500, 0.1)
    now[0] += 10 * MIN
    tracker.record("chat", 200, 0.1)
    assert tracker.counts("chat-av", "5m") == (1, 1)
    assert tracker.counts("chat-av", "1h") == (1, 2)


def test_events_older_than_the_newest_minute_count_in_the_newest() -> None:
    tracker = SLOTracker([AVAIL])
    tracker.record("chat", 200, 0.1, at=T0 + 10 * MIN)
    tracker.record("chat", 500, 0.1, at=T0)  # clock stepped back
    assert tracker.counts("chat-av", "1m", T0 + 10 * MIN) == (1, 2)


def test_idle_gap_longer_than_the_window_forgets_old_events() -> None:
    tracker = SLOTracker(
        [SLOConfig(name="s", alias="a", window="1h")],
        alerts=[
            BurnAlertConfig(
                name="f", severity="page", burn_rate=2, long_window="10m", short_window="5m"
            )
        ],
    )
    tracker.record("a", 500, 0.1, at=T0)
    tracker.record("a", 200, 0.1, at=T0 + 3 * 3600)
    assert tracker.counts("s", "1h", T0 + 3 * 3600) == (1, 1)


def test_fast_burn_fires_only_while_both_windows_burn() -> None:
    tracker = SLOTracker([AVAIL])
    traffic(tracker, T0, minutes=60, ok=100, bad=0)
    traffic(tracker, T0 + 60 * MIN, minutes=60, ok=90, bad=10)  # 10% errors: 20x burn
    traffic(tracker, T0 + 120 * MIN, minutes=10, ok=100, bad=0)

    def firing(at: float) -> set[str]:
        return {b.rule for b in tracker.evaluate(at) if b.firing}

    assert firing(T0 + 60 * MIN) == set()
    assert "page_fast" not in firing(T0 + 63 * MIN)  # 5 m burns, the 1 h window not yet
    assert "page_fast" in firing(T0 + 120 * MIN)
    assert "page_fast" not in firing(T0 + 130 * MIN)  # recovered: short window is clean
    fast = next(b for b in tracker.evaluate(T0 + 120 * MIN) if b.rule == "page_fast")
    # [60 min, 120 min]: 60 burning minutes plus the first clean one.
    assert fast.long_burn == pytest.approx(600 / 6100 / 0.005)
    assert fast.short_burn == pytest.approx(50 / 600 / 0.005)


def test_moderate_burn_tickets_but_does_not_page() -> None:
    tracker = SLOTracker([AVAIL])
    traffic(tracker, T0, minutes=7 * 60, ok=98, bad=2)  # 4x burn
    rules = {b.rule: b.firing for b in tracker.evaluate(T0 + 7 * 60 * MIN)}
    assert rules == {"page_fast": False, "page_slow": False, "ticket": True}
