"""Secrets are `env:NAME`: a literal credential in the config refuses to start (or warns loudly)."""

from __future__ import annotations

import logging

import pytest

from pilothouse.config.load import parse_settings
from pilothouse.errors import ConfigError

LITERAL = "sk-live-" + "q" * 32
CHAT = {"chat": {"targets": [{"provider": "openai", "model": "gpt-4o-mini"}]}}


def refused(raw: dict, **env: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, source="ph.yaml", env=env)
    message = info.value.message
    assert LITERAL not in message  # the refusal never prints the secret
    return message


def test_a_literal_provider_key_names_its_key_path() -> None:
    raw = {"providers": {"openai": {"type": "openai", "api_key": LITERAL}}, "models": CHAT}
    assert refused(raw) == (
        "ph.yaml: providers.openai.api_key: literal secrets are refused; use env:NAME "
        "(or server.allow_literal_secrets: true, for development only)"
    )


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"server": {"admin_key": LITERAL}}, "server.admin_key"),
        ({"privacy": {"pseudonym_secret": LITERAL}}, "privacy.pseudonym_secret"),
        ({"telemetry": {"otlp_headers": {"authorization": LITERAL}}}, "telemetry.otlp_headers"),
        (
            {
                "providers": {
                    "az": {"type": "azure", "endpoint": "https://a.example", "api_key": LITERAL}
                }
            },
            "providers.az.api_key",
        ),
        (
            {
                "slo": {
                    "webhook": {
                        "url": "https://hooks.example/x",
                        "headers": {"Authorization": LITERAL},
                    }
                }
            },
            "slo.webhook.headers.Authorization",
        ),
    ],
)
def test_every_secret_field_refuses_a_literal(raw: dict, path: str) -> None:
    assert f"ph.yaml: {path}" in refused(raw)


def test_env_references_still_work() -> None:
    raw = {
        "server": {"admin_key": "env:ADMIN"},
        "providers": {"openai": {"type": "openai", "api_key": "env:OPENAI"}},
        "models": CHAT,
        "slo": {"webhook": {"url": "env:HOOK", "headers": {"Authorization": "env:HOOK_AUTH"}}},
    }
    env = {"ADMIN": "a" * 20, "OPENAI": LITERAL, "HOOK": "https://h.example/t", "HOOK_AUTH": "B x"}
    settings = parse_settings(raw, source="ph.yaml", env=env)
    assert settings.provider_configs["openai"].api_key.get() == LITERAL
    assert settings.slo.webhook is not None
    assert settings.slo.webhook.url == "https://h.example/t"
    assert settings.slo.webhook.headers == {"Authorization": "B x"}


def test_the_escape_hatch_accepts_literals_and_warns_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = {
        "server": {"admin_key": LITERAL, "allow_literal_secrets": True},
        "providers": {"openai": {"type": "openai", "api_key": LITERAL}},
        "models": CHAT,
    }
    with caplog.at_level(logging.WARNING, logger="pilothouse.config"):
        settings = parse_settings(raw, source="ph.yaml", env={})
    assert settings.server.admin_key is not None and settings.server.admin_key.get() == LITERAL
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "2 literal secret(s)" in warning and "allow_literal_secrets" in warning
    assert LITERAL not in warning


def test_a_password_in_a_literal_url_warns_without_printing_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = {"store": {"url": "postgresql://app:hunter2-very-secret@db/ph"}}
    with caplog.at_level(logging.WARNING, logger="pilothouse.config"):
        parse_settings(raw, source="ph.yaml", env={})
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "store.url" in warning and "env:NAME" in warning
    assert "hunter2" not in warning
