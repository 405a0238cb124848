"""Alias → ordered targets, with retries, deadlines and circuit breakers."""
