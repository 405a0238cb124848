"""Releases: versioned prompt bundles, labels with promotion gates, route versions, lineage."""
