"""Prices, exact cost of usage, and the usage ledger."""
