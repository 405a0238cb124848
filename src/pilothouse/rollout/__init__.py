"""Rollouts: canary, A/B and shadow traffic splits with anytime-valid guards."""
