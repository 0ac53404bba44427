"""How deep Markdown nests, counted before the renderer recurses into it; how far it
walks looking for closing brackets and how much markup its paragraphs hold, counted
before it walks."""

from __future__ import annotations

import pytest

from newsletter.content.articles import bracket_scan, inline_work, markdown_depth


@pytest.mark.parametrize("source, depth", [
    ("plain text", 0),
    ("- a\n- b", 1),
    ("- a\n    - b\n        - c", 3),
    ("\t\t- tabbed", 3),
    ("> > > quoted", 3),
    ("1. 2) - > mixed", 4),
    ("- " * 10_000 + "x", 10_000),
    ("2026-12-03 is a date, 3.5 a number", 0),
])
def test_markdown_depth_counts_markers_and_indentation(source, depth):
    assert markdown_depth(source) == depth


@pytest.mark.parametrize("source, steps", [
    ("no brackets", 0),
    ("a [link](https://example.org) here", 5),
    ("[" * 10, 55),  # each one to the end of its paragraph
    ("[[[]]]", 9),
    ("\\[ \\[ \\]", 0),  # escaped: text, not brackets
    ("[a\n\n" + "x" * 1000, 2),  # only to the end of its own paragraph
    ("[" * 8_000, 8_000 * 8_001 // 2),
])
def test_bracket_scan_counts_the_walk_to_each_closing_bracket(source, steps):
    assert bracket_scan(source) == steps


@pytest.mark.parametrize("source, work", [
    ("plain words\nand a second line", 0),  # a bare newline is no markup
    ("*a*", 2 * 3),
    ("a  \nb", 1 * 5),  # a line break
    ("*a*\n\n*b*", 2 * 3 + 2 * 3),  # each paragraph on its own
    ("*a" * 1_000, 1_000 * 2_000),
])
def test_inline_work_is_markup_times_paragraph_length(source, work):
    assert inline_work(source) == work
