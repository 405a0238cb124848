"""Telemetry: Prometheus metrics, SLO tracking, burn-rate alerts and rule generation.

Nothing here builds global state on import: every object is created by the
gateway's runtime and handed to the code that needs it, so tests can build as
many isolated gateways as they like in one process.
"""
