"""store.url and redis.url may be `env:NAME` (deployments keep passwords in secrets)."""

from __future__ import annotations

import pytest

from pilothouse.config.load import parse_settings
from pilothouse.errors import ConfigError


def test_urls_resolve_from_the_environment() -> None:
    raw = {"store": {"url": "env:DB_URL"}, "redis": {"url": "env:REDIS_URL"}}
    env = {"DB_URL": "postgresql://u:secret@db/ph", "REDIS_URL": "redis://r:6379/1"}
    settings = parse_settings(raw, source="f.yaml", env=env)
    assert settings.store.url == "postgresql://u:secret@db/ph"
    assert settings.redis.url == "redis://r:6379/1"


def test_unset_url_variable_names_file_key_and_variable() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"store": {"url": "env:DB_URL"}}, source="f.yaml", env={})
    assert info.value.message == "f.yaml: store.url: environment variable DB_URL is not set"


def test_literal_urls_are_unchanged() -> None:
    settings = parse_settings({"redis": {"url": "redis://x:6379/0"}}, source="f", env={})
    assert settings.redis.url == "redis://x:6379/0"
