"""Exact-match response cache (opt-in per alias)."""
