"""Failed-auth throttle: counts per source and principal, backs off, forgets after quiet."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from pilothouse.config.schema import AuthThrottleConfig
from pilothouse.limits.auth_throttle import (
    AuthThrottle,
    MemoryThrottle,
    RedisThrottle,
    identities,
)

CFG = AuthThrottleConfig(max_failures=3, window_s=60, backoff_base_s=2, backoff_max_s=10)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_identities_name_the_source_and_the_public_key_prefix_never_the_secret() -> None:
    secret = "ph-" + "A" * 40
    assert identities("10.0.0.1", secret) == ["ip:10.0.0.1", "key:ph-AAAAAAA"]
    ids = identities("10.0.0.1", "sk-provider-secret-value")
    assert ids == ["ip:10.0.0.1", "admin_key"]
    assert not any("provider-secret" in i for i in ids)


async def test_failures_past_the_limit_back_off_exponentially_up_to_the_cap() -> None:
    clock = Clock()
    throttle = MemoryThrottle(CFG, clock)
    waits = [await throttle.failed(["ip:a"]) for _ in range(7)]
    assert waits == [0, 0, 0, 2, 4, 8, 10]
    assert await throttle.failed(["ip:b"]) == 0  # another source is not affected


async def test_counts_restart_after_a_quiet_window_but_not_while_blocked() -> None:
    clock = Clock()
    cfg = AuthThrottleConfig(max_failures=1, window_s=5, backoff_base_s=100, backoff_max_s=100)
    throttle = MemoryThrottle(cfg, clock)
    assert await throttle.failed(["ip:a"]) == 0
    assert await throttle.failed(["ip:a"]) == 100
    clock.now += 50  # quiet for longer than the window, but still blocked
    assert await throttle.failed(["ip:a"]) > 0
    clock.now += 1000
    assert await throttle.failed(["ip:a"]) == 0


async def test_the_principal_is_throttled_across_sources() -> None:
    throttle = MemoryThrottle(CFG, Clock())
    for n in range(3):
        assert await throttle.failed([f"ip:{n}", "admin_key"]) == 0
    assert await throttle.failed(["ip:fresh", "admin_key"]) == 2


async def test_disabled_never_throttles() -> None:
    cfg = AuthThrottleConfig(enabled=False, max_failures=1)
    throttle = AuthThrottle(cfg, MemoryThrottle(cfg, Clock()))
    assert [await throttle.failure("a", "x") for _ in range(5)] == [0.0] * 5


async def test_redis_shares_the_same_rule(redis_url: str, redis_prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        one = RedisThrottle(redis, redis_prefix, CFG)
        two = RedisThrottle(redis, redis_prefix, CFG)  # another replica
        assert [await one.failed(["ip:a"]) for _ in range(3)] == [0, 0, 0]
        wait = await two.failed(["ip:a"])
        assert wait == pytest.approx(2, abs=0.5)
        assert await two.failed(["ip:a"]) == pytest.approx(4, abs=0.5)
        assert await one.failed(["ip:other"]) == 0
        ttl = await redis.pttl(redis_prefix + "authfail:ip:a")
        assert 0 < ttl <= 61_000  # the count expires on its own
    finally:
        await redis.aclose()


async def test_a_redis_outage_fails_open_to_plain_401s() -> None:
    redis = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    throttle = AuthThrottle(CFG, RedisThrottle(redis, "x:", CFG))
    try:
        assert await throttle.failure("a", "x") == 0.0
    finally:
        await redis.aclose()
