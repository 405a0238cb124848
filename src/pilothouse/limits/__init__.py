"""Virtual keys, rate limits and budgets."""
