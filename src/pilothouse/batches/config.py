"""The ``batches:`` config section (typed, frozen, unknown keys rejected)."""

from __future__ import annotations

from typing import Annotated

import msgspec

_Positive = Annotated[int, msgspec.Meta(ge=1)]
_Seconds = Annotated[float, msgspec.Meta(gt=0)]


class BatchesConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How this replica runs batches and how large their files may be.

    ``run: false`` keeps a replica serving the API without executing lines (another
    replica runs them). Leases bound how long a killed replica holds a batch.
    """

    run: bool = True
    concurrency: _Positive = 4  # lines of one batch in flight at once, per replica
    max_active: _Positive = 2  # batches one replica runs at once (a small one need not wait)
    max_attempts: _Positive = 3  # a line's tries for retryable failures (429/5xx/timeouts)
    retry_backoff_s: Annotated[float, msgspec.Meta(ge=0)] = 0.5
    max_file_bytes: _Positive = 100 * 1024 * 1024
    max_lines: _Positive = 50_000
    lease_s: _Seconds = 30.0
    poll_interval_s: _Seconds = 1.0
