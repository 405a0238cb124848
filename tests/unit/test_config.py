"""Config: the issue's example file works as written; every mistake names its key path."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from pilothouse.config.load import load_settings, parse_settings
from pilothouse.errors import ConfigError

EXAMPLE = """
server: {host: 127.0.0.1, port: 4000, admin_key: env:PILOTHOUSE_ADMIN_KEY, max_in_flight: 512}
store: {url: sqlite:///./pilothouse.db}
redis: {url: null}
providers:
  local:   {type: llamacpp, model_path: default}
  primary: {type: openai, base_url: "http://127.0.0.1:9001/v1", api_key: env:PRIMARY_API_KEY, timeout_s: 30}
  backup:  {type: openai, base_url: "http://127.0.0.1:9002/v1", api_key: env:BACKUP_API_KEY}
  claude:  {type: anthropic, api_key: env:ANTHROPIC_API_KEY}
models:
  chat:
    targets: [{provider: primary, model: gpt-4o-mini}, {provider: backup, model: gpt-4o-mini}]
    retries: 2
  local: {targets: [{provider: local, model: smollm2-135m}]}
  embed: {targets: [{provider: primary, model: text-embedding-3-small}]}
prices:
  gpt-4o-mini: {input: 0.15, output: 0.60}
  text-embedding-3-small: {input: 0.02}
"""
ENV = {
    "PILOTHOUSE_ADMIN_KEY": "admin-secret",
    "PRIMARY_API_KEY": "sk-primary",
    "BACKUP_API_KEY": "sk-backup",
    "ANTHROPIC_API_KEY": "sk-ant",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pilothouse.yaml"
    path.write_text(text)
    return path


def test_issue_example_loads_as_written(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, EXAMPLE), env=ENV)
    assert settings.models["chat"].retries == 2
    assert [t.provider for t in settings.models["chat"].targets] == ["primary", "backup"]
    assert settings.prices["gpt-4o-mini"].input == Decimal("0.15")
    assert settings.provider_configs["primary"].api_key.get() == "sk-primary"
    assert settings.server.admin_key is not None
    assert "admin-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (("port: 4000", "port: four"), "server.port: Expected `int`, got `str`"),
        (("max_in_flight: 512", "max_in_flight: 512, colour: blue"), "server.colour: unknown key"),
        (("retries: 2", "retries: -1"), "models.chat.retries: must be >= 0"),
        (
            ("{provider: backup,", "{provider: nowhere,"),
            "models.chat.targets[1].provider: unknown provider 'nowhere'",
        ),
        (("type: anthropic", "type: anthropik"), "providers.claude.type: unknown provider type"),
        (("timeout_s: 30", "timeout_s: soon"), "providers.primary.timeout_s"),
        (("input: 0.02", "input: cheap"), "prices.text-embedding-3-small.input"),
    ],
)
def test_mistakes_name_file_and_key_path(
    tmp_path: Path, mutation: tuple[str, str], expected: str
) -> None:
    old, new = mutation
    assert old in EXAMPLE
    path = write(tmp_path, EXAMPLE.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=ENV)
    assert str(path) in info.value.message
    assert expected in info.value.message


def test_unset_secret_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in ENV.items() if k != "BACKUP_API_KEY"}
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, EXAMPLE), env=env)
    assert "providers.backup.api_key: environment variable BACKUP_API_KEY is not set" in str(
        info.value
    )


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "server: {port: 1\nmodels: ["), env=ENV)
    assert "invalid YAML at line" in info.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(tmp_path / "absent.yaml")


def test_embedded_default_serves_local_alias() -> None:
    settings = load_settings(None, env={})
    assert list(settings.models) == ["local"]
    assert settings.server.host == "127.0.0.1"
    assert settings.provider_configs["local"].type == "llamacpp"


def test_settings_are_frozen() -> None:
    settings = parse_settings({}, env={})
    with pytest.raises(AttributeError):
        settings.server.port = 1  # type: ignore[misc]


def test_reserved_keys_rejected() -> None:
    with pytest.raises(ConfigError, match="source: is not a configuration key"):
        parse_settings({"source": "x"}, env={})
