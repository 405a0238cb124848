"""The content gate: paraphrases agree, a question and its hard negatives never do."""

from __future__ import annotations

import pytest

from pilothouse.cache.gate import compare, features, verifier
from pilothouse.cache.semantic import normalise, refusal, split_request
from pilothouse.errors import ConfigError


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I reset my password?", "What is the way to reset my password?"),
        ("What is the capital of France?", "Tell me the capital city of France"),
        ("How long is the warranty on the X200?", "How long does the warranty on the X200 last?"),
    ],
)
def test_paraphrases_pass(a: str, b: str) -> None:
    assert compare(features(a), features(b)).ok


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        ("Can I get a refund?", "Can I not get a refund?", "negation"),
        ("Is Paris bigger than London?", "Is London bigger than Paris?", "relation"),
        ("Convert 5 miles to km", "Convert 5 km to miles", "numbers"),
        ("Does smoking cause cancer?", "Does cancer cause smoking?", "order"),
        ("What is the capital of France?", "What is the capital of Germany?", "entities"),
        ("Is a 30 minute timeout ok?", "Is a 30 second timeout ok?", "numbers"),
        ("Is 5 kg too heavy for the bag?", "Is 5 lb too heavy for the bag?", "numbers"),
        ("How do I export reports?", "How do I delete invoices?", "substitution"),
        (
            "How do I export reports?",
            "How do I export reports with finance team billing codes?",
            "content",
        ),
        ("How do I turn on alerts?", "How do I turn off alerts?", "particle"),
        ("Which is heavier, a kilogram of iron?", "Which is heavier, a pound of iron?", "numbers"),
    ],
)
def test_hard_negatives_are_refused_with_the_reason(a: str, b: str, reason: str) -> None:
    assert compare(features(a), features(b)).reason == reason


def test_request_split_and_refusals() -> None:
    req = {
        "model": "chat",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "Hi  THERE?"}],
        "temperature": 0,
    }
    text, rest = split_request(req) or ("", {})
    assert normalise(text) == "hi there" and rest["messages"] == [req["messages"][0]]
    assert refusal(req, allow_nonzero_temperature=False) is None
    assert refusal({**req, "temperature": 0.5}, allow_nonzero_temperature=False) == "temperature"
    assert refusal({**req, "temperature": 0.5}, allow_nonzero_temperature=True) is None
    assert (
        refusal({**req, "tools": [{"type": "function"}]}, allow_nonzero_temperature=True) == "tools"
    )
    assert split_request({"messages": [{"role": "assistant", "content": "x"}]}) is None


def test_unknown_verifier_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="content-overlap"):
        verifier("cross-encoder-xl")
