"""``rag.principal``: the secret is ``env:NAME`` like any credential; bad settings fail at load."""

from __future__ import annotations

import pytest

from pilothouse.config.load import parse_settings
from pilothouse.errors import ConfigError
from pilothouse.rag.config import PrincipalConfig

LITERAL = "principal-" + "q" * 32


def load(principal: dict[str, object], **env: str) -> PrincipalConfig:
    return parse_settings(
        {"rag": {"principal": principal}}, source="ph.yaml", env=env
    ).rag.principal


def test_the_secret_comes_from_the_environment_and_defaults_hold() -> None:
    cfg = load({"secret": "env:PRINCIPAL_SECRET"}, PRINCIPAL_SECRET=LITERAL)
    assert cfg.enabled and cfg.secret is not None and cfg.secret.get() == LITERAL
    assert LITERAL not in repr(cfg)
    assert cfg.header == "x-pilothouse-principal" and cfg.max_age_s == 300
    assert cfg.algorithms == ["HS256"]
    assert not load({}).enabled  # unset secret: feature off


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ({"secret": LITERAL}, "rag.principal.secret: literal secrets are refused"),
        ({"secret": "env:NOPE"}, "environment variable NOPE is not set"),
        ({"max_age_s": 0}, "max_age_s must be between 1 and 86400"),
        ({"algorithms": ["none"]}, "rag.principal.algorithms"),
        ({"algorithms": []}, "algorithms must list at least one algorithm"),
        ({"header": "authorization"}, "already used by the gateway"),
        ({"header": "x bad"}, "must be an HTTP header name"),
    ],
)
def test_bad_principal_settings_fail_at_load(principal: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(principal)
    assert expected in info.value.message and LITERAL not in info.value.message
