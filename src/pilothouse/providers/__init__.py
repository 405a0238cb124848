"""Upstream providers: one module per kind, registered by ``type`` name."""
