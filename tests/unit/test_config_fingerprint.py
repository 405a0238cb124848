"""The config hash: same settings → same hash; any setting → a different one; no secrets."""

from __future__ import annotations

from pilothouse.config.fingerprint import config_hash
from pilothouse.config.load import parse_settings

BASE = {
    "server": {"admin_key": "env:ADMIN", "port": 4000},
    "providers": {"p": {"type": "chaos"}},
    "models": {"chat": {"targets": [{"provider": "p", "model": "m"}]}},
}


def test_key_order_and_source_do_not_matter() -> None:
    reordered = {"models": BASE["models"], "providers": BASE["providers"], "server": BASE["server"]}
    a = parse_settings(BASE, source="a.yaml", env={"ADMIN": "x" * 20})
    b = parse_settings(reordered, source="b.yaml", env={"ADMIN": "x" * 20})
    assert config_hash(a) == config_hash(b)
    assert len(config_hash(a)) == 16


def test_a_changed_setting_changes_the_hash() -> None:
    a = parse_settings(BASE, env={"ADMIN": "x" * 20})
    b = parse_settings(
        {**BASE, "server": {**BASE["server"], "port": 4001}}, env={"ADMIN": "x" * 20}
    )
    assert config_hash(a) != config_hash(b)


def test_secret_values_do_not_enter_the_hash() -> None:
    a = parse_settings(BASE, env={"ADMIN": "first-secret-value"})
    b = parse_settings(BASE, env={"ADMIN": "other-secret-value"})
    assert config_hash(a) == config_hash(b)
