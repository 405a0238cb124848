"""A custom scorer for the support-qa suite: support answers should not grovel."""

APOLOGIES = ("sorry", "apologise", "apologize", "my apologies")


def no_apology(output: str) -> bool:
    text = output.lower()
    return not any(word in text for word in APOLOGIES)
