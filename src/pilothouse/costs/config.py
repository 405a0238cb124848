"""The ``costs:`` config section: spend anomaly detection and budget alert thresholds."""

from __future__ import annotations

import msgspec


class CostsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Cost governance settings (filled in by the cost-governance work)."""
