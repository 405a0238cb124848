"""The side-by-side diff of two prompt versions: every line lands on its side, once."""

from __future__ import annotations

from pilothouse.console.prompt_views import bundle_text, changed, side_by_side


def test_changed_lines_pair_up_and_extra_lines_stand_alone() -> None:
    left = "a\nb\nc\nd\n"
    right = "a\nB\nc\nd\ne\nf\n"
    rows = side_by_side(left, right)
    assert [(r.kind, r.left, r.right) for r in rows] == [
        ("equal", "a", "a"),
        ("replace", "b", "B"),
        ("equal", "c", "c"),
        ("equal", "d", "d"),
        ("insert", None, "e"),
        ("insert", None, "f"),
    ]
    assert [r.right_no for r in rows] == [1, 2, 3, 4, 5, 6]
    assert changed(rows) == 3


def test_an_uneven_replacement_keeps_both_sides_complete() -> None:
    rows = side_by_side("x\ny\nz\n", "q\n")
    assert [r.left for r in rows if r.left is not None] == ["x", "y", "z"]
    assert [r.right for r in rows if r.right is not None] == ["q"]
    assert [r.kind for r in rows] == ["replace", "delete", "delete"]
    assert side_by_side("same\n", "same\n")[0].kind == "equal"


def test_bundle_text_is_sorted_so_key_order_never_shows_as_a_change() -> None:
    assert bundle_text({"b": 1, "a": [2]}) == bundle_text({"a": [2], "b": 1}) == "a:\n- 2\nb: 1\n"
