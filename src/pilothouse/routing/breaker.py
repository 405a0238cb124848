"""Per-target circuit breaker: stop sending traffic to a target that keeps failing.

Opens on N consecutive failures or when the error rate over the last calls
crosses a threshold; after a cool-down one probe is let through (half-open)
and its outcome decides whether to close again. The clock is injectable so
tests drive time instead of sleeping.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from pilothouse.config.schema import BreakerConfig

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, config: BreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.state: State = "closed"
        self.opened_at = 0.0
        self.consecutive_failures = 0
        self._window: deque[bool] = deque(maxlen=max(config.window, 1))
        self._probe_in_flight = False

    def allow(self) -> bool:
        """May a call go to this target now? Half-open admits a single probe."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if self.clock() - self.opened_at < self.config.cooldown_s:
                return False
            self.state = "half_open"
            self._probe_in_flight = False
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def blocked(self) -> bool:
        """Would :meth:`allow` refuse now? Read-only: no probe slot is taken."""
        if self.state == "closed":
            return False
        if self.state == "open":
            return self.clock() - self.opened_at < self.config.cooldown_s
        return self._probe_in_flight

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through."""
        if self.state != "open":
            return 0.0
        return max(self.config.cooldown_s - (self.clock() - self.opened_at), 0.0)

    def release(self) -> None:
        """A call was abandoned (e.g. the client left): free the half-open probe slot."""
        self._probe_in_flight = False

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self._window.append(True)
        if self.state != "closed":
            self.state = "closed"
            self._window.clear()
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        self._window.append(False)
        if self.state == "half_open" or self._should_open():
            self._open()

    def _should_open(self) -> bool:
        cfg = self.config
        if self.consecutive_failures >= cfg.failure_threshold:
            return True
        calls = len(self._window)
        if calls < cfg.min_calls:
            return False
        failures = sum(1 for ok in self._window if not ok)
        return failures / calls >= cfg.error_rate

    def _open(self) -> None:
        self.state = "open"
        self.opened_at = self.clock()
        self._probe_in_flight = False
