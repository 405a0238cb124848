"""Keyword query terms: stop words dropped like PostgreSQL's `english` configuration does."""

from __future__ import annotations

from pilothouse.rag.store import keyword_terms


def test_question_words_do_not_become_search_terms() -> None:
    assert keyword_terms("How do I read a JSON file into a dict?") == [
        "read",
        "json",
        "file",
        "dict",
    ]


def test_a_query_of_only_stop_words_keeps_them() -> None:
    assert keyword_terms("is it not") == ["is", "it", "not"]
