"""Fault injection for drills and tests: a seeded plan, a provider and an HTTP upstream."""
