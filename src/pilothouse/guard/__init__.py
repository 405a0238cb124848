"""Guards applied to content entering or leaving the gateway (redaction first)."""
