"""Circuit breaker state machine and backoff maths, driven by an injected clock."""

from __future__ import annotations

import random

from pilothouse.config.schema import BreakerConfig
from pilothouse.routing.breaker import CircuitBreaker
from pilothouse.routing.retry import backoff_delay, retry_delay


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_probes_after_cooldown() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerConfig(failure_threshold=3, cooldown_s=10), clock)
    for _ in range(3):
        assert b.allow()
        b.record_failure()
    assert b.state == "open" and not b.allow()
    assert b.retry_in() == 10
    clock.now += 10
    assert b.allow() and b.state == "half_open"
    assert not b.allow(), "only one probe while half-open"
    b.record_success()
    assert b.state == "closed" and b.allow()


def test_failed_probe_reopens() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerConfig(failure_threshold=1, cooldown_s=5), clock)
    b.record_failure()
    clock.now += 5
    assert b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow()


def test_opens_on_error_rate_without_consecutive_run() -> None:
    b = CircuitBreaker(
        BreakerConfig(failure_threshold=100, error_rate=0.5, window=10, min_calls=10), Clock()
    )
    for i in range(10):
        (b.record_failure if i % 2 else b.record_success)()
    assert b.state == "open"


def test_success_resets_consecutive_count() -> None:
    b = CircuitBreaker(BreakerConfig(failure_threshold=2, min_calls=1000), Clock())
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert b.state == "closed"


def test_backoff_is_bounded_exponential_jitter() -> None:
    rng = random.Random(7)
    for attempt in range(10):
        d = backoff_delay(attempt, base=0.25, cap=8, rng=rng)
        assert 0 <= d <= min(8, 0.25 * 2**attempt)


def test_retry_after_honoured_up_to_cap() -> None:
    assert retry_delay(0, 3.0, base=0.1, cap=1, retry_after_cap=10) == 3.0
    assert retry_delay(0, 30.0, base=0.1, cap=1, retry_after_cap=10) is None
