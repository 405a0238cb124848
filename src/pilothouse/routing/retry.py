"""Backoff maths: exponential with full jitter, and ``Retry-After`` honoured up to a cap."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Full-jitter delay before retry number ``attempt`` (0 = first retry)."""
    ceiling = min(cap, base * (2**attempt))
    return (rng or random).uniform(0, ceiling)


def retry_delay(
    attempt: int,
    retry_after: float | None,
    *,
    base: float,
    cap: float,
    retry_after_cap: float,
    rng: random.Random | None = None,
) -> float | None:
    """Delay before the next attempt on the same target, or ``None`` to move on.

    A ``Retry-After`` longer than the cap means this target is busy for a
    while: better to fall back now than to hold the client.
    """
    if retry_after is not None:
        if retry_after > retry_after_cap:
            return None
        return retry_after
    return backoff_delay(attempt, base=base, cap=cap, rng=rng)
