"""The secret scrubber: configured secrets, header values, HTML pages, redactor fallback."""

from __future__ import annotations

from pilothouse.config.load import parse_settings
from pilothouse.errors import ProviderError
from pilothouse.guard.scrub import SecretScrubber, configured_secrets, summarise_html

KEY = "sk-ant-" + "Qw7Er5Ty3Ui1Op9As8Df6Gh4"
AZURE = "a" * 8 + "0123456789abcdef0123456789"
ADMIN = "admin-" + "Lk2Jh4Gf6Ds8"


def settings() -> object:
    raw = {
        "server": {"admin_key": "env:ADMIN"},
        "store": {"url": "postgresql://app:db-pass-77x@127.0.0.1/x"},
        "providers": {
            "claude": {"type": "anthropic", "api_key": "env:KEY"},
            "az": {"type": "azure", "endpoint": "https://x.openai.azure.com", "api_key": "env:AZ",
                   "headers": {"x-tenant-token": "tenant-secret-1", "x-region": "westeurope"}},
        },
    }  # fmt: skip
    return parse_settings(raw, source="<t>", env={"KEY": KEY, "AZ": AZURE, "ADMIN": ADMIN})


def test_every_configured_secret_is_found_resolved() -> None:
    found = configured_secrets(settings())  # type: ignore[arg-type]
    assert {KEY, AZURE, ADMIN, "tenant-secret-1", "db-pass-77x"} <= found
    assert "westeurope" not in found  # not a secret-looking header


def test_secrets_and_elided_keys_are_replaced() -> None:
    scrub = SecretScrubber.from_settings(settings())  # type: ignore[arg-type]
    text = scrub.text(f"Incorrect API key provided: {KEY}; also {KEY[:14]}****{KEY[-4:]}")
    assert KEY not in text and KEY[:14] not in text
    assert text.startswith("Incorrect API key provided: [SECRET]")
    headers = scrub.text(f'{{"api-key": "{AZURE}", "x-tenant-token": "tenant-secret-1"}}')
    assert AZURE not in headers and "tenant-secret-1" not in headers


def test_the_redactor_catches_credentials_the_config_does_not_know() -> None:
    scrub = SecretScrubber.from_settings(settings())  # type: ignore[arg-type]
    leaked = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    assert leaked not in scrub.text(f"upstream said: bad token {leaked}")


def test_html_pages_become_a_summary() -> None:
    page = "<!DOCTYPE html><html><head><title>502 Bad &amp; Gateway</title></head><body>x</body>"
    assert summarise_html("upstream returned 502: " + page) == (
        "upstream returned 502: an HTML error page (502 Bad & Gateway)"
    )
    assert summarise_html("<html><body>oops</body></html>") == "an HTML error page"
    assert summarise_html("plain text a < b") == "plain text a < b"


def test_provider_errors_are_cleaned_in_place() -> None:
    scrub = SecretScrubber([KEY])
    exc = ProviderError(f"upstream returned 401: {KEY}", upstream_status=401, retryable=False,
                        body={"error": {"message": KEY, "param": [KEY]}})  # fmt: skip
    assert scrub.error(exc) is exc
    assert KEY not in exc.message and KEY not in str(exc) and KEY not in str(exc.body)
