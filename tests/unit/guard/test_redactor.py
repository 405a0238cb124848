"""Redaction: what must never reach a trace, and what must survive untouched."""

from __future__ import annotations

import copy
import re

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilothouse.guard.redact import (
    ExtraPattern,
    RedactionConfig,
    Redactor,
    iban_valid,
    looks_random,
    luhn_valid,
)

REDACTOR = Redactor()


def redact(text: str) -> str:
    return REDACTOR.redact_text(text)[0]


# ---- independent oracles and generators -------------------------------------------------


def luhn_ok(digits: str) -> bool:
    """Textbook Luhn, written separately from the implementation under test."""
    checksum = 0
    for position, char in enumerate(digits[::-1]):
        value = int(char) * (2 if position % 2 else 1)
        checksum += value // 10 + value % 10
    return checksum % 10 == 0


def card_runs(text: str) -> list[str]:
    """Maximal digit runs (single space/dash separators allowed) of card length."""
    runs = [re.sub(r"\D", "", m) for m in re.findall(r"\d(?:[ -]?\d)*", text)]
    return [r for r in runs if 13 <= len(r) <= 19]


def with_check_digit(payload: str) -> str:
    return next(payload + d for d in "0123456789" if luhn_ok(payload + d))


def iban_for(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


cards = st.builds(
    lambda first, rest, groups, sep: (
        lambda number: (
            sep.join(number[i : i + groups] for i in range(0, len(number), groups))
            if sep
            else number
        )
    )(with_check_digit(first + rest)),
    st.sampled_from(["4", "51", "37", "6011"]),
    st.text("0123456789", min_size=11, max_size=13),
    st.sampled_from([4, 5]),
    st.sampled_from(["", " ", "-"]),
)
filler = st.text(st.sampled_from("abcxyz XYZ.,;:!?()\n"), max_size=30)
noisy = st.text(st.sampled_from("0123456789 -abc.+@:"), max_size=40)


# ---- properties ---------------------------------------------------------------------------


@settings(max_examples=400)
@given(st.lists(st.one_of(cards, noisy, filler), max_size=8).map(" ".join))
def test_no_valid_card_number_survives_in_any_text(text: str) -> None:
    assert not [run for run in card_runs(redact(text)) if luhn_ok(run)]


@given(cards, filler, filler)
def test_card_numbers_are_always_redacted(card: str, before: str, after: str) -> None:
    out = redact(f"{before} {card} {after}")
    assert re.sub(r"\D", "", card) not in re.sub(r"\D", "", out)
    assert "[CARD]" in out


@given(
    st.from_regex(r"[a-z][a-z0-9._+-]{0,15}", fullmatch=True),
    st.from_regex(r"[a-z][a-z0-9-]{0,10}\.(com|org|io|co\.uk|de)", fullmatch=True),
    filler,
)
def test_email_addresses_are_always_redacted(local: str, domain: str, text: str) -> None:
    email = f"{local}@{domain}"
    out = redact(f"{text} {email} {text}")
    assert email not in out and "[EMAIL]" in out


@given(
    st.sampled_from(["DE", "FR", "GB", "NL", "ES"]),
    st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=12, max_size=24),
    st.booleans(),
    filler,
)
def test_ibans_are_always_redacted(country: str, bban: str, spaced: bool, text: str) -> None:
    iban = iban_for(country, bban)
    assert iban_valid(iban)
    shown = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if spaced else iban
    out = redact(f"{text} {shown} {text}")
    assert shown not in out and "[IBAN]" in out


@given(st.ip_addresses(v=4), filler)
def test_ipv4_addresses_are_always_redacted(ip: object, text: str) -> None:
    out = redact(f"{text} host {ip} {text}")
    assert str(ip) not in out and "[IP]" in out


@given(st.ip_addresses(v=6).filter(lambda ip: len(str(ip).replace(":", "")) >= 4), filler)
def test_ipv6_addresses_are_redacted(ip: object, text: str) -> None:
    shown = str(ip)
    if not any(c.isdigit() for c in shown) or len([g for g in shown.split(":") if g]) < 2:
        return  # "a::b" style: deliberately kept, indistinguishable from code (std::vector)
    out = redact(f"{text} addr {shown} {text}")
    assert shown not in out and "[IP]" in out


# ---- known positives and negatives --------------------------------------------------------

POSITIVES = [
    ("mail me: jane.doe+work@example.co.uk", "[EMAIL]", "jane.doe"),
    ("call +1 (555) 123-4567 today", "[PHONE]", "123-4567"),
    ("call 555-987-6543", "[PHONE]", "987-6543"),
    ("ruf an: +49 151 2345 6789", "[PHONE]", "2345 6789"),
    ("appelle le 06 12 34 56 78", "[PHONE]", "34 56 78"),
    ("card 4111 1111 1111 1111 exp 12/27", "[CARD]", "4111"),
    ("amex 3782-822463-10005", "[CARD]", "822463"),
    ("pay 4111 1111 1111 1111 2 times", "[CARD]", "4111 1111"),
    ("IBAN DE89 3704 0044 0532 0130 00", "[IBAN]", "3704"),
    ("IBAN GB82WEST12345698765432", "[IBAN]", "WEST"),
    ("server 10.1.2.3.", "[IP]", "10.1.2.3"),
    ("v6 2001:db8:85a3::8a2e:370:7334", "[IP]", "8a2e"),
    ("key sk-proj-Abc123Def456Ghi789Jkl012Mno345", "[SECRET]", "Abc123"),
    ("anthropic sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345", "[SECRET]", "abcdefgh"),
    ("aws AKIAIOSFODNN7EXAMPLE", "[SECRET]", "IOSFODNN"),
    ("gh ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "[SECRET]", "aBcDeF"),
    ("slack xoxb-1234567890-abcdefghij", "[SECRET]", "abcdefghij"),
    ("Authorization: Bearer abc.def.ghi123456", "Bearer [SECRET]", "ghi123456"),
    ('{"password": "correcthorsebattery"}', '"[SECRET]"', "correcthorse"),
    ("export API_KEY=zyx987wvu654", "API_KEY=[SECRET]", "zyx987"),
    ("postgres://admin:s3cr3tpass@db:5432/x", "admin:[SECRET]@", "s3cr3t"),
    ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N", "[SECRET]", "eyJ"),
    ("random Xk9fQ2mPz7LwR4tYb8NcV3hJ6sDg1aEu", "[SECRET]", "Xk9fQ2"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "[SECRET]", "MIIE"),
]


@pytest.mark.parametrize(("text", "placeholder", "secret"), POSITIVES)
def test_known_positives(text: str, placeholder: str, secret: str) -> None:
    out = redact(text)
    assert placeholder in out and secret not in out, out


NEGATIVES = [
    "Order #12345678 shipped on 2024-01-15",
    "ticket ORD-2024-000123, invoice 2024/0042",
    "4111 1111 1111 1112 fails Luhn",
    "ISBN 978-3-16-148410-0",
    "IBAN-like DE00 3704 0044 0532 0130 00 with a bad checksum",
    "version 1.2.3 of pkg, python3.11, 1.2.3.4.5",
    "at 10:30:00 UTC on 2024-01-15T10:30:00Z",
    "std::vector<int> and a::b",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "sha da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "model SmolLM2-135M-Instruct-Q4_1-GGUF and meta-llama/Llama-3.1-70B-Instruct",
    "class AbstractSingletonProxyFactoryBean2Impl extends Base",
    "max_tokens=1024, temperature=0.7, top_p: 0.95, tokens: 512",
    "price $1,234.56 or 99.99 EUR; 3 x 4 = 12",
    "path /usr/local/lib/python3.11/site-packages/pilothouse/guard",
    "the key idea: passwords should be long",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_known_negatives_are_kept(text: str) -> None:
    assert REDACTOR.redact_text(text) == (text, {})


# ---- structures, config -------------------------------------------------------------------


def test_nested_messages_and_tool_calls_are_redacted_without_touching_the_input() -> None:
    request = {
        "model": "chat",
        "messages": [
            {"role": "system", "content": "You help jane@example.com"},
            {"role": "user", "content": [{"type": "text", "text": "my card 4111111111111111"}]},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "lookup",
                            "arguments": '{"email": "bob@example.org", "ip": "192.168.0.1"}',
                        },
                    }
                ],
            },
        ],
        "headers": {"Authorization": "Bearer sk-live", "X-Request-Id": "req_1"},
        "temperature": 0.2,
        "stop": ("END", "call 555-123-4567"),
    }
    original = copy.deepcopy(request)
    out, counts = REDACTOR.redact_obj(request)
    assert request == original
    assert out["messages"][0]["content"] == "You help [EMAIL]"
    assert out["messages"][1]["content"][0]["text"] == "my card [CARD]"
    args = out["messages"][2]["tool_calls"][0]["function"]["arguments"]
    assert args == '{"email": "[EMAIL]", "ip": "[IP]"}'
    assert out["headers"] == {"Authorization": "[SECRET]", "X-Request-Id": "req_1"}
    assert out["temperature"] == 0.2 and out["stop"] == ("END", "call [PHONE]")
    assert counts == {"email": 2, "card": 1, "ip": 1, "secret": 1, "phone": 1}


def test_config_selects_kinds_and_adds_patterns() -> None:
    config = msgspec.convert(
        {
            "kinds": ["card"],
            "extra_patterns": [{"name": "employee_id", "pattern": r"\bEMP-\d{6}\b"}],
        },
        RedactionConfig,
    )
    redactor = Redactor(config)
    text, counts = redactor.redact_text("EMP-004211 (a@b.io) paid 4111111111111111")
    assert text == "[EMPLOYEE_ID] (a@b.io) paid [CARD]"
    assert counts == {"employee_id": 1, "card": 1}


def test_bad_config_fails_at_start() -> None:
    broken = RedactionConfig(extra_patterns=[ExtraPattern(name="employee", pattern="(")])
    with pytest.raises(ValueError, match="employee"):
        Redactor(broken)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"kinds": ["names"]}, RedactionConfig)


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE88370400440532013000")
    assert looks_random("Xk9fQ2mPz7LwR4tYb8NcV3hJ6sDg1aEu")
    assert not looks_random("GatewayMetricsObserveRequestLatency2024")


# ---- detect-secrets as an independent oracle ----------------------------------------------

SECRET_LINES = [
    'aws_access_key_id = "AKIAIOSFODNN7EXAMPLE"',
    "github token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "slack xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx",
    "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    'password = "hunter2isnotsafe"',
    "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0",
    "-----BEGIN OPENSSH PRIVATE KEY-----",
]


def test_what_detect_secrets_finds_is_gone_after_redaction() -> None:
    pytest.importorskip("detect_secrets")
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    with default_settings():
        for line in SECRET_LINES:
            # Its entropy plugins flag plain words without its filters; use the typed ones.
            found = {
                s.secret_value
                for s in scan_line(line)
                if s.secret_value and "High Entropy" not in s.type
            }
            assert found, f"oracle sanity: {line!r} should be flagged"
            # A lone PEM header is not a key; we redact complete blocks.
            text = (
                line if "BEGIN" not in line else f"{line}\nb3Bl\n-----END OPENSSH PRIVATE KEY-----"
            )
            cleaned = redact(text)
            assert not [value for value in found if value in cleaned], (line, cleaned)
